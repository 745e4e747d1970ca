"""Fold BatchNorm into the convolution before it, for inference.

Why: at inference a BatchNorm is a fixed per-channel scale and shift, so it can live in the
convolution's kernel and bias, and the model stops making one more pass over every feature map.
On this CPU, folded, lite_unet infers 1.18x faster and UNet-ResNet34 1.07x (medians of 3 alternating
processes at 256², ``experiments/results/bn_fold.md``); CSE-UNet, whose BatchNorms sit inside its
custom blocks, would gain nothing (removing them outright does not speed it up). The folded model
gives the same outputs up to float rounding; it is for prediction only (BatchNorm no longer learns).
"""

from __future__ import annotations

import keras
import numpy as np

_CONVS = ("Conv2D", "AtrousConv2D", "DepthwiseConv2D")


@keras.saving.register_keras_serializable(package="landseg")
class FoldedBatchNorm(keras.layers.Layer):
    """Where a BatchNorm was before its scale and shift moved into the conv: passes inputs on."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _producer(layer):
    """The layer whose output is ``layer``'s single input, or None."""
    if len(layer._inbound_nodes) != 1:
        return None
    inputs = layer._inbound_nodes[0].input_tensors
    return inputs[0]._keras_history.operation if len(inputs) == 1 else None


def foldable_pairs(model) -> dict[str, str]:
    """``{conv name: batchnorm name}`` for each BatchNorm fed only by a linear conv that feeds only it."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        conv = _producer(layer)
        if (conv is not None and type(conv).__name__ in _CONVS and len(conv._inbound_nodes) == 1
                and len(conv._outbound_nodes) == 1 and conv.get_config().get("activation") == "linear"):
            pairs[conv.name] = layer.name
    return pairs


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """Kernel and bias of ``conv`` followed by ``bn`` (moving statistics), as one conv."""
    kernel = conv.kernel.numpy().astype(np.float64)
    bias = conv.bias.numpy().astype(np.float64) if conv.use_bias else 0.0
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
    mean = bn.moving_mean.numpy().astype(np.float64)
    if type(conv).__name__ == "DepthwiseConv2D":  # output channel c * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def _is_functional(model) -> bool:
    return isinstance(model, keras.Model) and getattr(model, "_is_graph_network", hasattr(model, "_nodes_by_depth"))


def fold_batchnorm(model):
    """A copy of functional ``model`` with each foldable BatchNorm merged into its conv.

    Nested functional models (an encoder built as its own model) are folded too. Returns
    ``model`` itself when nothing folds (subclassed models, BatchNorms inside custom layers,
    convs with an activation or a second consumer).
    """
    if not _is_functional(model):
        return model
    pairs = foldable_pairs(model)
    nested = {layer.name: fold_batchnorm(layer) for layer in model.layers if _is_functional(layer)}
    nested = {name: m for name, m in nested.items() if m is not model.get_layer(name)}
    if not pairs and not nested:
        return model
    folded_bns = set(pairs.values())

    def clone(layer):
        if layer.name in nested:
            return nested[layer.name]
        if layer.name in folded_bns:
            return FoldedBatchNorm(name=layer.name)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights or layer.name in folded_bns or layer.name in nested:
            continue  # input layers may be renamed by the clone; they hold nothing to copy
        target = folded.get_layer(layer.name)
        if layer.name in pairs:
            target.set_weights(_folded_weights(layer, model.get_layer(pairs[layer.name])))
        else:
            target.set_weights(layer.get_weights())
    return folded
