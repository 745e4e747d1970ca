"""MultiResUNet (Ibtehaz & Rahman 2020), as the authors' Keras code builds it.

A MultiRes block replaces UNet's two 3x3 convs by three chained 3x3 convs of widths
W/6, W/3, W/2 (W = alpha x U, alpha = 1.67), concatenated - receptive fields of 3, 5 and 7
pixels (the paper's cheap stand-in for parallel 3x3, 5x5, 7x7 convs) - plus a 1x1 residual. Res paths (4, 3, 2, 1 residual
3x3 convs at levels 1-4) carry the encoder features to the decoder through a few more
nonlinearities, narrowing the semantic gap the plain skip connections leave. At ``base_width``
32, 3 bands and 1 class: 7,238,228 trainable parameters, 7,262,748 in all - the paper's
7,262,750 less the two moving statistics of the authors' final conv+BatchNorm, which landseg's
head (a 1x1 conv with bias, then softmax) replaces.

Each conv has no bias and a BatchNorm without scale (the authors' ``conv2d_bn``; the
BatchNorms after concatenations and residual sums keep theirs); landseg's BatchNorm momentum
(``common.BN_MOMENTUM``) replaces Keras' 0.99 so short CPU runs work.
"""

from __future__ import annotations

import keras
from keras import layers

from .common import BN_MOMENTUM, FastBatchNorm, InputSizeCheck, classification_head

SIZE_MULTIPLE = 16  # four 2x poolings
ALPHA = 1.67
RES_PATH_LENGTHS = (4, 3, 2, 1)  # residual convs on the skip of level 1..4


def _bn(x, name: str, scale: bool = True):
    return FastBatchNorm(momentum=BN_MOMENTUM, scale=scale, name=name)(x)


def _conv_bn(x, filters: int, kernel: int, name: str, relu: bool = True):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(x, f"{name}_bn", scale=False)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def multires_widths(u: int) -> tuple[int, int, int]:
    """Widths of the three chained convs of a MultiRes block for UNet width ``u`` (authors' rounding)."""
    w = ALPHA * u
    return int(w * 0.167), int(w * 0.333), int(w * 0.5)


def multires_block(x, u: int, name: str):
    a, b, c = multires_widths(u)
    shortcut = _conv_bn(x, a + b + c, 1, f"{name}_shortcut", relu=False)
    c1 = _conv_bn(x, a, 3, f"{name}_c1")
    c2 = _conv_bn(c1, b, 3, f"{name}_c2")
    c3 = _conv_bn(c2, c, 3, f"{name}_c3")
    x = _bn(layers.Concatenate(name=f"{name}_concat")([c1, c2, c3]), f"{name}_concat_bn")
    x = layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([shortcut, x]))
    return _bn(x, f"{name}_out_bn")


def res_path(x, filters: int, length: int, name: str):
    for i in range(length):
        shortcut = _conv_bn(x, filters, 1, f"{name}_{i}_shortcut", relu=False)
        y = _conv_bn(x, filters, 3, f"{name}_{i}_c")
        x = layers.ReLU(name=f"{name}_{i}_relu")(layers.Add(name=f"{name}_{i}_add")([shortcut, y]))
        x = _bn(x, f"{name}_{i}_out_bn")
    return x


def build_multires_unet(num_classes: int, input_shape=(None, None, 3), base_width: int = 32, dropout: float = 0.0,
                        logits: bool = False, name: str = "multires_unet") -> keras.Model:
    """MultiResUNet with UNet widths base_width x (1, 2, 4, 8), bridge 16x."""
    u = [base_width * 2 ** i for i in range(5)]
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(SIZE_MULTIPLE, "multires_unet", name="input_size_check")(inputs)
    skips = []
    for lvl in range(4):
        x = multires_block(x, u[lvl], f"enc{lvl + 1}")
        skips.append(res_path(x, u[lvl], RES_PATH_LENGTHS[lvl], f"respath{lvl + 1}"))
        x = layers.MaxPooling2D(2, name=f"pool{lvl + 1}")(x)
    x = multires_block(x, u[4], "bridge")
    for lvl in range(3, -1, -1):
        x = layers.Conv2DTranspose(u[lvl], 2, strides=2, padding="same", name=f"up{lvl + 1}")(x)
        x = layers.Concatenate(name=f"up{lvl + 1}_concat")([x, skips[lvl]])
        x = multires_block(x, u[lvl], f"dec{lvl + 1}")
        if dropout:
            x = layers.SpatialDropout2D(dropout, name=f"dec{lvl + 1}_dropout")(x)
    outputs = classification_head(x, num_classes, logits)
    return keras.Model(inputs, outputs, name=name)
