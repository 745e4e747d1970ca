"""What every encoder family shares: BatchNorm that keeps pretrained statistics, and a ``LayerBook``
that records, while an encoder is built, which weights of its source file each layer takes.

Why a book: the families are written as plain functional code that names each layer after its key in
the weight file (``encoder_f3_expand_conv`` <- ``features.3.conv.0.0``), so loading is one loop over
the book: transpose each torch kernel, copy each BatchNorm, adapt the first kernel to the band count.
Nothing has to look layers up in a finished model, so an encoder can load its weights before the
decoder on top of it exists.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .. import atrous
from ..common import FastBatchNorm


class EncoderWeightsError(ValueError):
    """A weights file does not fit the encoder it was given to (missing key, wrong shape)."""


@keras.saving.register_keras_serializable(package="landseg")
class FrozenStatsBatchNorm(FastBatchNorm):
    """BatchNorm that always normalises with its stored (pretrained) statistics.

    A pretrained encoder's statistics are better than any estimate from a CPU run's batches of
    4-8 crops; keeping them fixed also makes evaluation-mode outputs follow training from the
    first step. Scale and offset stay trainable.
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


class LayerBook:
    """Layers of one encoder under construction, each with the key prefix of its weights in the source file."""

    def __init__(self, frozen_stats: bool, bn_momentum: float, bn_epsilon: float):
        self.frozen_stats, self.bn_momentum, self.bn_epsilon = frozen_stats, bn_momentum, bn_epsilon
        self.entries: list[tuple[layers.Layer, str]] = []

    def add(self, layer, source_key: str):
        self.entries.append((layer, source_key))
        return layer

    def conv(self, name: str, source_key: str, filters: int, kernel: int, strides: int = 1, dilation: int = 1,
             padding: str | None = None):
        padding = padding or ("valid" if kernel == 1 else "same")
        return self.add(atrous.conv2d(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                                      use_bias=False, name=name), source_key)

    def depthwise(self, name: str, source_key: str, kernel: int, strides: int = 1, dilation: int = 1,
                  padding: str = "same"):
        return self.add(layers.DepthwiseConv2D(kernel, strides=strides, padding=padding, dilation_rate=dilation,
                                               use_bias=False, name=name), source_key)

    def bn(self, name: str, source_key: str):
        cls = FrozenStatsBatchNorm if self.frozen_stats else FastBatchNorm
        return self.add(cls(epsilon=self.bn_epsilon, momentum=self.bn_momentum, name=name), source_key)

    def load(self, state: dict[str, np.ndarray], path: str) -> int:
        """Copy ``state`` (torch layout: kernels (O, I, kh, kw)) into the book's layers; returns tensors copied.

        A kernel with another input-band count than the file's (the stem on 4 bands) is adapted with
        ``weights.adapt_band_axis``; any other mismatch raises EncoderWeightsError naming the file.
        """
        copied = 0
        for layer, key in self.entries:
            if isinstance(layer, layers.BatchNormalization):
                values = [_get(state, f"{key}.{k}", path) for k in ("weight", "bias", "running_mean", "running_var")]
            else:
                w = _get(state, f"{key}.weight", path)
                kernel = w.transpose(2, 3, 0, 1) if isinstance(layer, layers.DepthwiseConv2D) else w.transpose(2, 3, 1, 0)
                values = [_fit_bands(kernel, tuple(layer.kernel.shape), f"{key}.weight", path)]
            for v, var in zip(values, layer.weights):
                if tuple(v.shape) != tuple(var.shape):
                    raise EncoderWeightsError(f"{path}: {key} has shape {tuple(v.shape)}, layer {layer.name} needs "
                                              f"{tuple(var.shape)} (weights of another encoder?)")
            layer.set_weights(values)
            copied += len(values)
        return copied


def _get(state: dict, key: str, path: str) -> np.ndarray:
    try:
        return np.asarray(state[key], dtype=np.float32)
    except KeyError:
        raise EncoderWeightsError(f"{path}: no {key!r} in the file (weights of another encoder?)") from None


def _fit_bands(kernel: np.ndarray, shape: tuple, key: str, path: str) -> np.ndarray:
    """A first kernel for RGB adapted to ``shape``'s band count (timm's rule, ``weights.adapt_band_axis``)."""
    if kernel.shape == shape or kernel.shape[2] != 3 or kernel.shape[:2] + kernel.shape[3:] != shape[:2] + shape[3:]:
        return kernel
    from ..weights import adapt_band_axis

    return adapt_band_axis(kernel, int(shape[2]), axis=2, scale=True)


def relu6(name: str):
    return layers.ReLU(6.0, name=name)


def torch_pad(x, kernel: int, strides: int, name: str):
    """PyTorch's symmetric padding ``kernel // 2`` before a strided convolution.

    Keras' "same" pads a stride-2 3x3 convolution of an even input only at the bottom/right, so
    its windows sit one pixel off torchvision's; padding explicitly and convolving "valid"
    reproduces the PyTorch features exactly. Stride 1 needs nothing: there "same" is symmetric.
    """
    if strides == 1:
        return x, "same"
    return layers.ZeroPadding2D(kernel // 2, name=name)(x), "valid"


def atrous_step(strides: int, stride: int, rate: int, output_stride: int) -> tuple[int, int, int]:
    """DeepLab's rule for an ``output_stride`` below the encoder's own: a layer that would take the features
    past it runs at stride 1, and every later layer dilates by the stride it skipped.

    ``stride`` / ``rate``: the features' stride and dilation so far. Returns (this layer's stride, this
    layer's dilation, the dilation after it).
    """
    if strides > 1 and stride * strides > output_stride:
        return 1, rate, rate * strides
    return strides, rate, rate


INVERTED_RESIDUAL_PARTS = ("expand_conv", "expand_bn", "depthwise_conv", "depthwise_bn", "project_conv", "project_bn")


def inverted_residual(x, book: LayerBook, prefix: str, names: dict, *, expand: int, kernel: int, strides: int,
                      dilation: int, cout: int, residual: bool, torch_padding: bool):
    """MobileNetV2's / EfficientNet-Lite's block: [1x1 expand, BN, ReLU6], depthwise, BN, ReLU6, 1x1 project,
    BN, [+ input]. ``names``: {part: (layer name, source key)} for ``INVERTED_RESIDUAL_PARTS``;
    ``torch_padding``: PyTorch's symmetric padding before a strided depthwise convolution, else "same"."""
    inputs = x
    if expand != 1:
        x = book.conv(*names["expand_conv"], x.shape[-1] * expand, 1)(x)
        x = relu6(prefix + "expand_relu")(book.bn(*names["expand_bn"])(x))
    x, pad = torch_pad(x, kernel, strides, prefix + "depthwise_pad") if torch_padding else (x, "same")
    x = book.depthwise(*names["depthwise_conv"], kernel, strides=strides, dilation=dilation, padding=pad)(x)
    x = relu6(prefix + "depthwise_relu")(book.bn(*names["depthwise_bn"])(x))
    x = book.conv(*names["project_conv"], cout, 1)(x)
    x = book.bn(*names["project_bn"])(x)
    if residual:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x
