"""DeepLabv3 with a ResNet50 backbone (keras.applications, no preset download) and an ASPP head.

output_stride 16 (default, the DeepLabv3 training setting): stage 5 runs at stride 1 with
dilation 2, ASPP rates 6/12/18. output_stride 32: the plain backbone, rates 3/6/9.
The backbone and its caffe input scaling are the encoder table's ``resnet50``
(``encoders/resnet50.py``); ``aspp`` is shared with ``deeplabv3plus``.
"""

from __future__ import annotations

import keras
from keras import layers

from .common import BN_MOMENTUM, BilinearUpsample, FastBatchNorm, InputSizeCheck
from . import atrous, encoders
from .encoders import resnet50 as r50


@keras.saving.register_keras_serializable(package="landseg")
class ImagePooling(layers.Layer):
    """ASPP image-level branch: global average -> Conv1x1 + BN + ReLU -> broadcast to the map."""

    def __init__(self, filters: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.conv = layers.Conv2D(self.filters, 1, use_bias=False, name="conv")
        self.bn = FastBatchNorm(momentum=BN_MOMENTUM, name="bn")

    def build(self, input_shape):
        pooled = (input_shape[0], 1, 1, input_shape[-1])
        self.conv.build(pooled)
        self.bn.build((input_shape[0], 1, 1, self.filters))

    def call(self, x, training=None):
        p = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        p = keras.ops.relu(self.bn(self.conv(p), training=training))
        shape = keras.ops.shape(x)
        return keras.ops.broadcast_to(p, (shape[0], shape[1], shape[2], self.filters))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def conv_bn_relu(x, filters, kernel, dilation=1, name=""):
    x = atrous.conv2d(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(x)
    x = FastBatchNorm(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def aspp(f, filters: int, rates) -> object:
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and image pooling, concatenated and projected 1x1."""
    branches = [conv_bn_relu(f, filters, 1, name="aspp0")]
    branches += [conv_bn_relu(f, filters, 3, r, name=f"aspp{i + 1}") for i, r in enumerate(rates)]
    branches.append(ImagePooling(filters, name="aspp_pool")(f))
    x = layers.Concatenate(name="aspp_concat")(branches)
    return conv_bn_relu(x, filters, 1, name="aspp_project")


def size_multiple(output_stride: int = 16) -> int:
    """Input sides must divide by the output stride (16: stage 5 dilated; 32: plain ResNet50)."""
    return int(output_stride)


def build_deeplabv3_resnet50(num_classes: int, input_shape=(None, None, 3), output_stride: int = 16,
                             encoder_weights=None, freeze_encoder: bool = False, logits: bool = False,
                             aspp_filters: int = 256, name: str = "deeplabv3_resnet50") -> keras.Model:
    """DeepLabv3-ResNet50; ``encoder_weights``: None, 'imagenet' (local Keras cache) or a file path."""
    if output_stride not in (16, 32):
        raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
    path = encoders.resolve_weights("resnet50", encoder_weights)
    bands = int(input_shape[-1])
    backbone = r50.adapt_backbone(r50.resnet50(bands, path), dilate=output_stride == 16)
    backbone.name = "encoder"

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(size_multiple(output_stride), name, name="input_size_check")(inputs)
    x = encoders.get_encoder("resnet50").norm.layer(bands)(x)  # a Rescaling: Normalization breaks ONNX export
    f = backbone(x)
    x = aspp(f, aspp_filters, (6, 12, 18) if output_stride == 16 else (3, 6, 9))
    x = conv_bn_relu(x, aspp_filters, 3, name="head")
    x = layers.Conv2D(num_classes, 1, name="classifier_conv")(x)  # classify, then upsample the logits
    x = BilinearUpsample(output_stride, name="upsample")(x)
    x = layers.Activation("linear" if logits else "softmax", dtype="float32", name="classifier_output")(x)
    model = keras.Model(inputs, x, name=name)
    if freeze_encoder:
        encoders.freeze_encoder(model)
    return model
