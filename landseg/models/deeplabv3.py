"""DeepLabv3 with a ResNet50 backbone (keras.applications, no preset download) and an ASPP head.

output_stride 16 (default, the DeepLabv3 training setting): stage 5 runs at stride 1 with
dilation 2, ASPP rates 6/12/18. output_stride 32: the plain backbone, rates 3/6/9.
The ImageNet ResNet50 expects caffe inputs (BGR, 0-255 minus the ImageNet mean): a fixed
Rescaling maps [0, 1] RGB to that scale, and the first conv's kernel is flipped BGR->RGB
when ImageNet weights are loaded.
"""

from __future__ import annotations

import os

import keras
from keras import layers

from .common import BN_MOMENTUM, BilinearUpsample, FastBatchNorm, InputSizeCheck, caffe_scaling
from .weights import cached_weights, check_weights_file, transfer_weights

# keras.applications' ImageNet ResNet50 without its classifier, as Keras caches it
_RESNET50_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
_RESNET50_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"

CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


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


def _conv_bn_relu(x, filters, kernel, dilation=1, name=""):
    x = layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(x)
    x = FastBatchNorm(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _adapt_backbone(backbone: keras.Model, dilate: bool) -> keras.Model:
    """Clone ResNet50 with fused BatchNorm (common.FastBatchNorm, short-run momentum) and, for output stride 16,
    stage 5 at stride 1 with dilation 2; weights carried over."""

    def clone(layer):
        cfg = layer.get_config()
        if isinstance(layer, layers.BatchNormalization):
            return FastBatchNorm.from_config({**cfg, "momentum": BN_MOMENTUM})
        if dilate and layer.name.startswith("conv5_block1_") and cfg.get("strides") == (2, 2):
            cfg["strides"] = (1, 1)
        if dilate and layer.name.startswith("conv5_") and layer.name.endswith("_2_conv"):
            cfg["dilation_rate"] = (2, 2)
        return layer.__class__.from_config(cfg)

    adapted = keras.models.clone_model(backbone, clone_function=clone)
    adapted.set_weights(backbone.get_weights())
    return adapted


def _resnet50(bands: int, encoder_weights):
    kwargs = dict(include_top=False, input_shape=(None, None, bands))
    if encoder_weights is None:
        return keras.applications.ResNet50(weights=None, **kwargs)
    if encoder_weights == "imagenet":
        encoder_weights = cached_weights("ResNet50 (keras.applications)", _RESNET50_FILE, _RESNET50_URL + _RESNET50_FILE)
    rgb = keras.applications.ResNet50(weights=encoder_weights, **{**kwargs, "input_shape": (None, None, 3)})
    conv1 = rgb.get_layer("conv1_conv")
    kernel, bias = conv1.get_weights()
    conv1.set_weights([kernel[:, :, ::-1, :], bias])  # caffe BGR -> landseg RGB
    if bands == 3:
        return rgb
    model = keras.applications.ResNet50(weights=None, **kwargs)
    transfer_weights(rgb, model)
    return model


def build_deeplabv3_resnet50(num_classes: int, input_shape=(None, None, 3), output_stride: int = 16,
                             encoder_weights=None, freeze_encoder: bool = False, logits: bool = False,
                             aspp_filters: int = 256, name: str = "deeplabv3_resnet50") -> keras.Model:
    """DeepLabv3-ResNet50; ``encoder_weights``: None, 'imagenet' (local Keras cache) or a file path."""
    if output_stride not in (16, 32):
        raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
    if encoder_weights not in (None, "imagenet"):
        encoder_weights = check_weights_file(os.fspath(encoder_weights))
    bands = int(input_shape[-1])
    backbone = _resnet50(bands, encoder_weights)
    backbone = _adapt_backbone(backbone, dilate=output_stride == 16)
    backbone.name = "encoder"
    if freeze_encoder:  # as segmentation-models does: BatchNorm layers stay trainable
        for layer in backbone.layers:
            if not isinstance(layer, layers.BatchNormalization):
                layer.trainable = False

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(output_stride, name, name="input_size_check")(inputs)
    x = caffe_scaling(CAFFE_MEAN_RGB, bands)(x)
    f = backbone(x)
    rates = (6, 12, 18) if output_stride == 16 else (3, 6, 9)
    branches = [_conv_bn_relu(f, aspp_filters, 1, name="aspp0")]
    branches += [_conv_bn_relu(f, aspp_filters, 3, r, name=f"aspp{i + 1}") for i, r in enumerate(rates)]
    branches.append(ImagePooling(aspp_filters, name="aspp_pool")(f))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, aspp_filters, 1, name="aspp_project")
    x = _conv_bn_relu(x, aspp_filters, 3, name="head")
    x = layers.Conv2D(num_classes, 1, name="classifier_conv")(x)  # classify, then upsample the logits
    x = BilinearUpsample(output_stride, name="upsample")(x)
    x = layers.Activation("linear" if logits else "softmax", dtype="float32", name="classifier_output")(x)
    return keras.Model(inputs, x, name=name)
