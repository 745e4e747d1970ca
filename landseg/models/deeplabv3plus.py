"""DeepLabv3+ (Chen et al. 2018) on any encoder of the encoder table.

ASPP on the encoder's stride-16 feature (rates 6/12/18 with image pooling), upsampled 4x and
concatenated with the stride-4 feature reduced to 48 channels by a 1x1 convolution, two 3x3
convolutions, the classifier, and the logits upsampled to the input.

Where the stride-16 feature comes from: Lite0/1/2, MobileNetV2 and ResNet50 end at stride 32, and
their last stage is *dilated* to stride 16 (its stride-2 convolution runs at stride 1, every later
3x3 / depthwise convolution at dilation 2: DeepLab's own rule for ResNet and MobileNetV2), rather
than cutting ASPP in at the stride-16 feature. Why: the last two stages hold most of a pretrained
encoder's weights (Lite0: 76% of its encoder parameters, MobileNetV2: 70%) and its widest features;
dropping them would throw those away, and run at stride 16 they cost about what ASPP does (Lite0 at
256²: ~0.57 against ~0.67 GMAC for ASPP at width 256; the two 3x3 decoder convolutions at stride 4,
~5 GMAC, dominate either way). geoembed's ResNet-18
ends at stride 8: ASPP runs there (rates 12/24/36, the paper's rule for output stride 8) on the
stride-2 feature as the low level (ratio 4 kept); with ``input_downsample`` 2 those are strides 16
and 4 of the image.
"""

from __future__ import annotations

import keras
from keras import layers

from . import encoders
from .common import BilinearUpsample
from .deeplabv3 import aspp, conv_bn_relu

OUTPUT_STRIDE = 16
LOW_LEVEL = 48


def size_multiple(encoder: str = "resnet50", input_downsample: int = 1) -> int:
    return encoders.size_multiple(encoder, input_downsample, OUTPUT_STRIDE)


def build_deeplabv3plus(num_classes: int, input_shape=(None, None, 3), encoder: str = "resnet50", encoder_weights=None,
                        freeze_encoder: bool = False, aspp_filters: int = 256, input_downsample: int = 1,
                        dropout: float = 0.0, logits: bool = False) -> keras.Model:
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    feats = encoders.encode(inputs, encoder, encoder_weights, model_name="deeplabv3plus",
                            input_downsample=input_downsample, output_stride=OUTPUT_STRIDE)
    deep = max(feats)
    low = deep // 4
    x = aspp(feats[deep], aspp_filters, tuple(r * OUTPUT_STRIDE // deep for r in (6, 12, 18)))
    x = BilinearUpsample(deep // low, name="decoder_upsample")(x)
    skip = conv_bn_relu(feats[low], LOW_LEVEL, 1, name="decoder_low")
    x = layers.Concatenate(name="decoder_concat")([x, skip])
    x = conv_bn_relu(x, aspp_filters, 3, name="decoder_conv0")
    x = conv_bn_relu(x, aspp_filters, 3, name="decoder_conv1")
    if dropout:
        x = layers.SpatialDropout2D(dropout, name="decoder_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name="classifier_conv")(x)
    x = BilinearUpsample(low * int(input_downsample), name="upsample")(x)
    x = layers.Activation("linear" if logits else "softmax", dtype="float32", name="output")(x)
    model = keras.Model(inputs, x, name="deeplabv3plus")
    if freeze_encoder:
        encoders.freeze_encoder(model)
    return model
