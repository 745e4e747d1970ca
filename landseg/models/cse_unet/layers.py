"""CSE-UNet building blocks (docs/cse_unet.md), Keras layers and ``keras.ops`` only, so the
model runs on the TensorFlow, JAX and PyTorch backends and reloads from ``.keras``."""

from __future__ import annotations

import keras
from keras import layers

from ..common import BN_MOMENTUM, BilinearUpsample, FastBatchNorm

_PKG = "landseg"


@keras.saving.register_keras_serializable(package=_PKG)
class ConvBN(layers.Layer):
    """Conv (no bias) + BatchNorm (+ ReLU): the unit every CSE-UNet conv uses (fused BN on TF)."""

    def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1, activation=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.dilation_rate, self.activation = int(dilation_rate), bool(activation)
        self.conv = layers.Conv2D(self.filters, self.kernel_size, strides=self.strides, padding="same",
                                  dilation_rate=self.dilation_rate, use_bias=False, name="conv")
        self.bn = FastBatchNorm(momentum=BN_MOMENTUM, name="bn")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training=None):
        x = self.bn(self.conv(x), training=training)
        return keras.ops.relu(x) if self.activation else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "dilation_rate": self.dilation_rate, "activation": self.activation}


@keras.saving.register_keras_serializable(package=_PKG)
class ConvStack(layers.Layer):
    """A sequence of ConvBN units at one width; optional spatial dropout at the end.

    ``specs`` is a list of (kernel_size, dilation_rate): the double conv is [(3, 1), (3, 1)],
    an RFB skip pathway e.g. [(3, 1), (3, 1), (3, 5)].
    """

    def __init__(self, filters, specs=((3, 1), (3, 1)), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.dropout = int(filters), float(dropout)
        self.specs = [tuple(int(v) for v in s) for s in specs]
        self.units = [ConvBN(self.filters, k, dilation_rate=d, name=f"unit{i}") for i, (k, d) in enumerate(self.specs)]
        self.drop = layers.SpatialDropout2D(self.dropout, name="dropout") if self.dropout > 0 else None

    def build(self, input_shape):
        shape = input_shape
        for unit in self.units:
            unit.build(shape)
            shape = unit.compute_output_shape(shape)

    def call(self, x, training=None):
        for unit in self.units:
            x = unit(x, training=training)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "specs": [list(s) for s in self.specs],
                "dropout": self.dropout}


# RFB skip pathways, level 1..4: sequential (kernel, dilation) stacks from the paper.
RFB_SPECS = {
    1: [(3, 1), (3, 1), (3, 1), (3, 7)],
    2: [(3, 1), (3, 1), (3, 5)],
    3: [(3, 1), (3, 3)],
    4: [(1, 1), (3, 1)],
}
# Auxiliary multi-kernel path kernels, level 1..4 (each stride 2).
AUX_KERNELS = {1: 7, 2: 5, 3: 3, 4: 2}


@keras.saving.register_keras_serializable(package=_PKG)
class DualPathFusion(layers.Layer):
    """ReLU(MaxPool(e_i) + aux_i): joins the main path with the strided multi-kernel path."""

    def call(self, inputs):
        e, aux = inputs
        return keras.ops.relu(keras.ops.max_pool(e, 2, 2, padding="valid") + aux)

    def compute_output_shape(self, input_shape):
        return input_shape[1]


@keras.saving.register_keras_serializable(package=_PKG)
class UpConcat(layers.Layer):
    """Decoder entry: Conv1x1 halving the width (with bias), bilinear 2x, concat with the skip.

    The 1x1 conv runs before upsampling: the result is the same (both are linear per pixel
    and the interpolation weights sum to one) and it costs a quarter of the FLOPs.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.reduce = layers.Conv2D(self.filters, 1, name="reduce")
        self.up = BilinearUpsample(2, name="up")

    def build(self, input_shape):
        self.reduce.build(input_shape[0])

    def call(self, inputs):
        x, skip = inputs
        x = self.up(self.reduce(x))
        return keras.ops.concatenate([x, skip], axis=-1)

    def compute_output_shape(self, input_shape):
        x, skip = input_shape
        return (*skip[:-1], self.filters + skip[-1])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
