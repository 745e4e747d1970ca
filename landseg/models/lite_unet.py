"""LiteUNet: a light UNet decoder on any encoder of the encoder table, sized for fine-tuning on a CPU.

Why this shape: the ImageNet Lite0 encoder (the default) costs ~0.5 GMAC per 256² crop, and the
decoder is kept to the same order (two convolutions at the first two levels below the deepest
feature, one at the next two, logits upsampled from the finest skip), so a training step of 8 crops
fits in about a second on two cores. The decoder takes whatever strides the encoder gives
(``encoders.encode``): Lite/MobileNetV2/ResNet50 2-32, geoembed's ResNet-18 1-8. ``input_downsample``
lets the model see coarser pixels than the file has (DeepGlobe's 50 cm scenes at 1 m): the image is
area-averaged inside the model and the logits are upsampled back, so training, evaluation and
prediction keep working at file resolution and the model owns its size multiple (deepest stride x
downsample, ``encoders.size_multiple``).
"""

from __future__ import annotations

import keras
from keras import layers

from . import encoders
from .common import BN_MOMENTUM, BilinearUpsample, FastBatchNorm

DECODER = ((96, 2), (64, 2), (48, 1), (32, 1))  # (width, convolutions) per level, from the deepest skip up


def size_multiple(input_downsample: int = 1, encoder: str = "efficientnet_lite0") -> int:
    return encoders.size_multiple(encoder, input_downsample)


def _conv_bn_relu(x, width: int, name: str):
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=name + "_conv")(x)
    x = FastBatchNorm(momentum=BN_MOMENTUM, name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def build_lite_unet(num_classes: int, input_shape=(None, None, 3), encoder: str = "efficientnet_lite0",
                    encoder_weights=None, freeze_encoder=False, input_downsample: int = 1, dropout: float = 0.0,
                    logits: bool = False):
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    feats = encoders.encode(inputs, encoder, encoder_weights, model_name="lite_unet",
                            input_downsample=input_downsample)
    strides = sorted(feats, reverse=True)
    x = feats[strides[0]]
    for (width, convs), stride, deeper in zip(DECODER, strides[1:], strides):
        x = BilinearUpsample(deeper // stride, name=f"decoder_up{stride}")(x)
        x = layers.Concatenate(name=f"decoder_cat{stride}")([x, feats[stride]])
        for i in range(convs):
            x = _conv_bn_relu(x, width, f"decoder_s{stride}_{i}")
    if dropout:
        x = layers.SpatialDropout2D(dropout, name="decoder_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name="head_conv")(x)
    up = strides[min(len(DECODER), len(strides) - 1)] * int(input_downsample)
    if up > 1:
        x = BilinearUpsample(up, name="head_upsample")(x)
    act = "linear" if logits else "softmax"
    outputs = layers.Activation(act, dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name="lite_unet")
    if freeze_encoder:
        encoders.freeze_encoder(model)
    return model
