"""ResNet50 from keras.applications (never downloaded) as an encoder: DeepLab's backbone.

The ImageNet ResNet50 expects caffe inputs (BGR, 0-255 minus the ImageNet mean): the encoder table's
normalisation maps [0, 1] RGB to that scale, and the first conv's kernel is flipped BGR->RGB when
ImageNet weights are loaded. BatchNorm becomes ``common.FastBatchNorm`` with the short-run momentum;
output stride 16 runs stage 5 at stride 1 with dilation 2 (DeepLabv3's training setting).
"""

from __future__ import annotations

import keras
from keras import layers

from .. import atrous
from ..common import BN_MOMENTUM, FastBatchNorm
from ..weights import transfer_weights

# keras.applications' ImageNet ResNet50 without its classifier, as Keras caches it
RESNET50_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_FILE
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
# the last layer of each stride, in keras.applications' names
STRIDE_LAYERS = {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out", 16: "conv4_block6_out",
                 32: "conv5_block3_out"}
CHANNELS = {2: 64, 4: 256, 8: 512, 16: 1024, 32: 2048}


def adapt_backbone(backbone: keras.Model, dilate: bool, bn_momentum: float = BN_MOMENTUM) -> keras.Model:
    """Clone ResNet50 with fused BatchNorm (common.FastBatchNorm, short-run momentum) and, for output stride 16,
    stage 5 at stride 1 with dilation 2; weights carried over."""

    def clone(layer):
        cfg = layer.get_config()
        if isinstance(layer, layers.BatchNormalization):
            return FastBatchNorm.from_config({**cfg, "momentum": bn_momentum})
        if dilate and layer.name.startswith("conv5_block1_") and cfg.get("strides") == (2, 2):
            cfg["strides"] = (1, 1)
        if dilate and layer.name.startswith("conv5_") and layer.name.endswith("_2_conv"):
            return atrous.AtrousConv2D.from_config({**cfg, "dilation_rate": (2, 2)})
        return layer.__class__.from_config(cfg)

    adapted = keras.models.clone_model(backbone, clone_function=clone)
    adapted.set_weights(backbone.get_weights())
    return adapted


def resnet50(bands: int, weights_path: str | None) -> keras.Model:
    """keras.applications ResNet50 without top for ``bands`` bands; ``weights_path``: None or a weights file
    (RGB kernels flipped from caffe's BGR; other band counts adapted with ``weights.transfer_weights``)."""
    kwargs = dict(include_top=False, input_shape=(None, None, bands))
    if weights_path is None:
        return keras.applications.ResNet50(weights=None, **kwargs)
    rgb = keras.applications.ResNet50(weights=weights_path, **{**kwargs, "input_shape": (None, None, 3)})
    conv1 = rgb.get_layer("conv1_conv")
    kernel, bias = conv1.get_weights()
    conv1.set_weights([kernel[:, :, ::-1, :], bias])  # caffe BGR -> landseg RGB
    if bands == 3:
        return rgb
    model = keras.applications.ResNet50(weights=None, **kwargs)
    transfer_weights(rgb, model)
    return model


def resnet50_features(x, weights_path: str | None, bn_momentum: float = BN_MOMENTUM, output_stride: int = 32) -> dict:
    """{stride: feature} of ResNet50 on ``x`` (caffe-scaled), run as one nested model named ``encoder``."""
    dilate = output_stride == 16
    backbone = adapt_backbone(resnet50(int(x.shape[-1]), weights_path), dilate, bn_momentum)
    strides = {s: (16 if dilate and s == 32 else s) for s in STRIDE_LAYERS}
    encoder = keras.Model(backbone.input, [backbone.get_layer(n).output for n in STRIDE_LAYERS.values()], name="encoder")
    outputs = encoder(x)
    features = {}
    for s, out in zip(STRIDE_LAYERS, outputs):
        features[strides[s]] = out  # the dilated stage-5 output replaces stage 4's at stride 16
    return features
