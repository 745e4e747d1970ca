"""Model registry: one name -> builder, accepted input sizes and documented options.

Training, evaluation and prediction build models only through ``build_model`` so that a
run's ``model_info.json`` (name + options) rebuilds the same network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Option:
    default: Any
    doc: str


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. ``size_multiple``: input H and W must be multiples of it (default options)."""

    name: str
    builder: Callable[..., Any]
    size_multiple: int
    options: dict[str, Option] = field(default_factory=dict)
    doc: str = ""
    size_multiple_for: Callable[[dict], int] | None = None

    def multiple(self, **options) -> int:
        """Size multiple for these options (e.g. DeepLab's output_stride changes it)."""
        self.resolve(options)
        if self.size_multiple_for is None:
            return self.size_multiple
        return int(self.size_multiple_for({**self.defaults(), **options}))

    def defaults(self) -> dict[str, Any]:
        return {k: o.default for k, o in self.options.items()}

    def resolve(self, options: dict) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"model {self.name!r} has no option(s) {unknown}; it takes {sorted(self.options)}")
        return {**self.defaults(), **options}


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
    return {n: {k: f"default={o.default!r}; {o.doc}" for k, o in s.options.items()} for n, s in sorted(_REGISTRY.items())}


def check_input_size(name: str, h: int, w: int, **options) -> None:
    """Raise ValueError with the accepted sizes if ``h`` x ``w`` does not fit model ``name``."""
    from .common import size_error_message

    m = get_model_spec(name).multiple(**options)
    if h % m or w % m or h <= 0 or w <= 0:
        raise ValueError(size_error_message(name, h, w, m))


def build_model(name: str, num_classes: int, input_shape=(None, None, 3), **options):
    """Build registered model ``name`` -> keras.Model giving (B, H, W, num_classes) probabilities (or logits)."""
    spec = get_model_spec(name)
    opts = spec.resolve(options)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, bands), got {input_shape}")
    if input_shape[0] is not None and input_shape[1] is not None:
        check_input_size(name, input_shape[0], input_shape[1], **options)
    return spec.builder(int(num_classes), tuple(input_shape), **opts)


# ---- built-in models -------------------------------------------------------------------------

_LOGITS = Option(False, "output logits instead of softmax probabilities")
_WEIGHTS = Option(None, "None (random), 'imagenet' (from the local Keras cache, never downloaded), 'hed-vgg16' (backbone "
                        "vgg16, from the [pretrained] extra) or a weights file path; "
                        "bands != 3: first conv's RGB filters repeated cyclically and scaled by 3/bands")
_FREEZE = Option(False, "freeze the encoder (BatchNorm layers stay trainable, as segmentation-models does)")


def _cse_unet(num_classes, input_shape, **o):
    from .cse_unet import build_cse_unet
    return build_cse_unet(num_classes, input_shape, **o)


register(ModelSpec("cse_unet", _cse_unet, 16, {
    "base_width": Option(64, "width of level 1 (levels double it; bridge 16x); 64 = paper, e.g. 8 for tests"),
    "dropout": Option(0.0, "spatial dropout rate after each double conv (0 = paper configuration)"),
    "logits": _LOGITS,
}, doc="CSE-UNet (Wang & Xie 2020): dual-path encoder, RFB skips, bilinear decoder"))


def _sm(arch):
    def build(num_classes, input_shape, **o):
        from .sm_models import build_sm_model
        return build_sm_model(arch, num_classes, input_shape, **o)
    return build


for _arch, _doc in (("unet", "UNet"), ("linknet", "LinkNet"), ("fpn", "FPN")):
    register(ModelSpec(_arch, _sm(_arch), 32, {
        "backbone": Option("resnet34", "segmentation-models backbone name (e.g. resnet18, resnet34, mobilenetv2)"),
        "encoder_weights": _WEIGHTS,
        "freeze_encoder": _FREEZE,
        "logits": _LOGITS,
    }, doc=f"segmentation-models {_doc}"))


def _deeplab(num_classes, input_shape, **o):
    from .deeplabv3 import build_deeplabv3_resnet50
    return build_deeplabv3_resnet50(num_classes, input_shape, **o)


register(ModelSpec("deeplabv3_resnet50", _deeplab, 16, {
    "output_stride": Option(16, "16 (stage 5 dilated, ASPP rates 6/12/18) or 32 (plain ResNet50, rates 3/6/9); "
                                "input sizes must be multiples of it"),
    "encoder_weights": _WEIGHTS,
    "freeze_encoder": _FREEZE,
    "logits": _LOGITS,
    "aspp_filters": Option(256, "width of the ASPP branches and head"),
}, doc="DeepLabv3, ResNet50 backbone (keras.applications) + ASPP", size_multiple_for=lambda o: o["output_stride"]))


_ENCODER_WEIGHTS = ("None (random), 'imagenet' (the encoder's ImageNet weights), a named weights fitting the encoder "
                    "(imagenet-lite0/1/2, imagenet-mobilenet_v2, geoembed-aerial, imagenet-resnet50; packages of the "
                    "[pretrained] extra or the Keras cache, never downloaded) or a weights file path (.pth, .npz, .h5)")
_ENCODER_DOC = ("efficientnet_lite0/1/2, mobilenet_v2, resnet18_geoembed (aerial, deepest stride 8: use "
                "input_downsample 2 or 4) or resnet50 (landseg.models.encoders)")
_DOWNSAMPLE = Option(1, "1, 2 or 4: the model averages the input to 1/N resolution inside and upsamples its output "
                        "back (e.g. 2 for 50 cm DeepGlobe); the size multiple grows N times")


def _lite_unet(num_classes, input_shape, **o):
    from .lite_unet import build_lite_unet
    return build_lite_unet(num_classes, input_shape, **o)


def _lite_unet_multiple(o):
    from .lite_unet import size_multiple
    return size_multiple(o["input_downsample"], o["encoder"])


register(ModelSpec("lite_unet", _lite_unet, 32, {
    "encoder": Option("efficientnet_lite0", _ENCODER_DOC),
    "encoder_weights": Option(None, _ENCODER_WEIGHTS),
    "freeze_encoder": _FREEZE,
    "input_downsample": _DOWNSAMPLE,
    "dropout": Option(0.0, "spatial dropout before the head"),
    "logits": _LOGITS,
}, doc="light UNet decoder on an encoder of the encoder table, EfficientNet-Lite0 by default (CPU-sized; "
       "pretrained encoders keep their BatchNorm statistics)", size_multiple_for=_lite_unet_multiple))


def _deeplabv3plus(num_classes, input_shape, **o):
    from .deeplabv3plus import build_deeplabv3plus
    return build_deeplabv3plus(num_classes, input_shape, **o)


def _deeplabv3plus_multiple(o):
    from .deeplabv3plus import size_multiple
    return size_multiple(o["encoder"], o["input_downsample"])


register(ModelSpec("deeplabv3plus", _deeplabv3plus, 16, {
    "encoder": Option("resnet50", _ENCODER_DOC + "; the last stage of stride-32 encoders is dilated to stride 16"),
    "encoder_weights": Option(None, _ENCODER_WEIGHTS),
    "freeze_encoder": _FREEZE,
    "aspp_filters": Option(256, "width of the ASPP branches and the decoder (e.g. 16 on a CPU test)"),
    "input_downsample": _DOWNSAMPLE,
    "dropout": Option(0.0, "spatial dropout before the classifier"),
    "logits": _LOGITS,
}, doc="DeepLabv3+: ASPP at stride 16 + a stride-4 low-level decoder, on an encoder of the encoder table",
    size_multiple_for=_deeplabv3plus_multiple))


def _segformer(num_classes, input_shape, **o):
    from .segformer import build_segformer
    return build_segformer(num_classes, input_shape, **o)


register(ModelSpec("segformer", _segformer, 32, {
    "size": Option("b0", "MiT encoder size b0..b5 (hidden dims / depths of keras-hub's mit_b*_ade20k presets; "
                         "b0: 32-64-160-256 wide, 2 blocks per stage, 3.3 M encoder parameters)"),
    "encoder_weights": Option(None, "None (random) or the folder of a keras-hub MiTBackbone preset of this size, "
                                    "saved once with save_to_preset (never a preset name: landseg does not download)"),
    "decoder_width": Option(None, "width of the all-MLP decoder; None = the paper's (256 for b0/b1, 768 for b2-b5)"),
    "dropout": Option(0.1, "spatial dropout before the classifier (the paper's 0.1)"),
    "freeze_encoder": _FREEZE,
    "logits": _LOGITS,
}, doc="SegFormer (Xie et al. 2021): MiT transformer encoder + all-MLP decoder, any multiple-of-32 input"))


def _fcn8s(num_classes, input_shape, **o):
    from .fcn import build_fcn8s
    return build_fcn8s(num_classes, input_shape, **o)


register(ModelSpec("fcn8s", _fcn8s, 32, {
    "encoder_weights": Option(None, "None (random), 'hed-vgg16' (HED's VGG16 from the [pretrained] extra), "
                                    "'imagenet' (Keras cache, never downloaded) or a keras.applications VGG16 notop "
                                    ".h5 path; conv1-conv5 only (no file carries fc6/fc7)"),
    "fc_width": Option(1024, "width of fc6/fc7 run as convolutions (paper 4096; both start random)"),
    "fc_kernel": Option(3, "fc6 kernel size (paper 7; 3 is 1/5 of the cost and parameters at the same width)"),
    "dropout": Option(0.5, "dropout after fc6 and fc7 (the paper's 0.5)"),
    "freeze_encoder": _FREEZE,
    "logits": _LOGITS,
}, doc="FCN-8s (Long et al. 2015) on VGG16: fc6/fc7 as convs, pool3/pool4 skips, 'same' padding"))


def _multires_unet(num_classes, input_shape, **o):
    from .multires_unet import build_multires_unet
    return build_multires_unet(num_classes, input_shape, **o)


register(ModelSpec("multires_unet", _multires_unet, 16, {
    "base_width": Option(32, "UNet width U of level 1 (levels double it, bridge 16x); 32 = paper, e.g. 8 for tests"),
    "dropout": Option(0.0, "spatial dropout after each decoder MultiRes block (0 = paper configuration)"),
    "logits": _LOGITS,
}, doc="MultiResUNet (Ibtehaz & Rahman 2020): MultiRes blocks and Res paths"))
