"""LiteUNet: a UNet decoder on EfficientNet-Lite0, sized for fine-tuning on a CPU.

Why this shape: the ImageNet Lite0 encoder costs ~0.5 GMAC per 256² crop, and the decoder
is kept to the same order (two convolutions at strides 16 and 8, one at 4 and 2, logits
upsampled from stride 2), so a training step of 8 crops fits in about a second on two
cores. ``input_downsample`` lets the model see coarser pixels than the file has (DeepGlobe's
50 cm scenes at 1 m): the image is area-averaged inside the model and the logits are
upsampled back, so training, evaluation and prediction keep working at file resolution and
the model owns its size multiple (32 x downsample).
"""

from __future__ import annotations

import keras
from keras import layers

from .common import BN_MOMENTUM, BilinearUpsample, FastBatchNorm, InputSizeCheck
from .encoders.efficientnet_lite import INPUT_OFFSET, INPUT_SCALE, lite0_features, load_lite0_weights

DECODER = ((16, 96, 2), (8, 64, 2), (4, 48, 1), (2, 32, 1))  # (stride, width, convolutions)


def size_multiple(input_downsample: int = 1) -> int:
    return 32 * int(input_downsample)


def _conv_bn_relu(x, width: int, name: str):
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=name + "_conv")(x)
    x = FastBatchNorm(momentum=BN_MOMENTUM, name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def build_lite_unet(num_classes: int, input_shape=(None, None, 3), encoder_weights=None, freeze_encoder=False,
                    input_downsample: int = 1, dropout: float = 0.0, logits: bool = False):
    bands, down = int(input_shape[-1]), int(input_downsample)
    if down not in (1, 2, 4):
        raise ValueError(f"input_downsample must be 1, 2 or 4, got {input_downsample!r}")
    pretrained = encoder_weights is not None
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(size_multiple(down), "lite_unet", name="input_size_check")(inputs)
    if down > 1:
        x = layers.AveragePooling2D(down, name="input_downsample")(x)
    x = layers.Rescaling(INPUT_SCALE, INPUT_OFFSET, name="input_scaling")(x)
    feats = lite0_features(x, frozen_stats=pretrained, bn_momentum=BN_MOMENTUM)
    x = feats[32]
    for stride, width, convs in DECODER:
        x = BilinearUpsample(2, name=f"decoder_up{stride}")(x)
        x = layers.Concatenate(name=f"decoder_cat{stride}")([x, feats[stride]])
        for i in range(convs):
            x = _conv_bn_relu(x, width, f"decoder_s{stride}_{i}")
    if dropout:
        x = layers.SpatialDropout2D(dropout, name="decoder_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name="head_conv")(x)
    x = BilinearUpsample(2 * down, name="head_upsample")(x)
    act = "linear" if logits else "softmax"
    outputs = layers.Activation(act, dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name="lite_unet")
    if pretrained:
        _load_encoder(model, encoder_weights)
    if freeze_encoder:
        for layer in model.layers:
            if layer.name.startswith("encoder_"):
                layer.trainable = False
    return model


def _load_encoder(model, encoder_weights) -> None:
    import os

    from .encoders import weights_file
    from .encoders.torch_pickle import load_legacy_state_dict
    from .weights import check_weights_file

    if encoder_weights == "imagenet-lite0":
        path = weights_file("imagenet-lite0")
    else:
        path = check_weights_file(os.fspath(encoder_weights))
    load_lite0_weights(model, load_legacy_state_dict(path))



