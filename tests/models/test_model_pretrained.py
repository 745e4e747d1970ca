"""Pretrained encoders come only from a given file or the local Keras cache; a missing file
gives a message saying how to supply it, and nothing touches the network."""

import numpy as np
import pytest

from model_helpers import NUM_CLASSES, save_legacy_h5


@pytest.fixture(scope="module")
def resnet18_encoder():
    """A randomly initialised resnet18 backbone standing in for the ImageNet one (never downloaded)."""
    from landseg.models.sm_models import import_sm

    sm = import_sm()
    from tensorflow import keras as tfk

    submodules = dict(backend=tfk.backend, layers=tfk.layers, models=tfk.models, utils=tfk.utils)
    return sm.Backbones.get_backbone("resnet18", input_shape=(None, None, 3), weights=None, include_top=False,
                                     **submodules)


def _encoder_weight(model, layer):
    return np.asarray(model.get_layer("sm_unet_resnet18").get_layer(layer).get_weights()[0])


@pytest.mark.parametrize("fmt", ["legacy.h5", "weights.h5"])
def test_encoder_weights_from_file(resnet18_encoder, tmp_path, fmt, no_network):
    from landseg.models import build_model

    path = tmp_path / f"enc.{fmt}"
    if fmt == "legacy.h5":
        save_legacy_h5(resnet18_encoder, path)
    else:
        resnet18_encoder.save_weights(path)
    m = build_model("unet", NUM_CLASSES, backbone="resnet18", encoder_weights=str(path))
    for layer in ("conv0", "stage3_unit1_conv2", "stage4_unit2_conv1"):
        np.testing.assert_array_equal(_encoder_weight(m, layer), resnet18_encoder.get_layer(layer).get_weights()[0])


def test_imagenet_from_keras_cache_and_extra_bands(resnet18_encoder, tmp_path, monkeypatch, no_network):
    from landseg.models import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    save_legacy_h5(resnet18_encoder, tmp_path / "models" / "resnet18_imagenet_1000_no_top.h5")
    m = build_model("unet", NUM_CLASSES, input_shape=(None, None, 4), backbone="resnet18",
                    encoder_weights="imagenet", freeze_encoder=True)
    src = resnet18_encoder.get_layer("conv0").get_weights()[0]          # (7, 7, 3, 64)
    got = _encoder_weight(m, "conv0")                                   # (7, 7, 4, 64)
    np.testing.assert_allclose(got[:, :, :3], src * 0.75, rtol=1e-6)   # RGB filters scaled by 3/4
    np.testing.assert_allclose(got[:, :, 3], src[:, :, 0] * 0.75, rtol=1e-6)  # band 4 starts as band 1
    bn_src = resnet18_encoder.get_layer("bn_data").get_weights()
    bn_got = m.get_layer("sm_unet_resnet18").get_layer("bn_data").get_weights()
    for s, g in zip(bn_src, bn_got):
        np.testing.assert_array_equal(g, s[[0, 1, 2, 0]])
    np.testing.assert_array_equal(_encoder_weight(m, "stage2_unit1_conv1"),
                                  resnet18_encoder.get_layer("stage2_unit1_conv1").get_weights()[0])
    inner = m.get_layer("sm_unet_resnet18")
    assert not inner.get_layer("conv0").trainable and inner.get_layer("bn0").trainable
    assert inner.get_layer("decoder_stage0a_conv").trainable


@pytest.mark.parametrize("name,fname", [("unet", "resnet18_imagenet_1000_no_top.h5"),
                                         ("deeplabv3_resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")])
def test_missing_imagenet_weights_say_how_to_supply_them(name, fname, tmp_path, monkeypatch, no_network):
    from landseg.models import WeightsNotFoundError, build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    opts = {"backbone": "resnet18"} if name == "unet" else {"output_stride": 32, "aspp_filters": 8}
    with pytest.raises(WeightsNotFoundError) as err:
        build_model(name, NUM_CLASSES, encoder_weights="imagenet", **opts)
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "models" / fname))
    assert "does not download" in msg and "encoder_weights='/path/to/" + fname in msg and "https://" in msg


def test_missing_weights_file_names_the_path(tmp_path, no_network):
    from landseg.models import WeightsNotFoundError, build_model

    missing = tmp_path / "nope.h5"
    with pytest.raises(WeightsNotFoundError, match=f"^{missing}: encoder weights file not found"):
        build_model("fpn", NUM_CLASSES, backbone="resnet18", encoder_weights=str(missing))


def test_deeplab_resnet50_weights_file_flips_caffe_bgr(tmp_path, no_network):
    import keras

    from landseg.models import build_model

    src = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    path = save_legacy_h5(src, tmp_path / "resnet50_notop.h5")
    m = build_model("deeplabv3_resnet50", NUM_CLASSES, output_stride=32, aspp_filters=8, encoder_weights=path)
    enc = m.get_layer("encoder")
    kernel = src.get_layer("conv1_conv").get_weights()[0]
    np.testing.assert_array_equal(enc.get_layer("conv1_conv").get_weights()[0], kernel[:, :, ::-1])
    np.testing.assert_array_equal(enc.get_layer("conv5_block3_3_conv").get_weights()[0],
                                  src.get_layer("conv5_block3_3_conv").get_weights()[0])


def test_fcn8s_imagenet_vgg16_file_flips_caffe_bgr(tmp_path, no_network):
    import keras

    from landseg.models import build_model

    src = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = save_legacy_h5(src, tmp_path / "vgg16_notop.h5")
    m = build_model("fcn8s", NUM_CLASSES, input_shape=(None, None, 4), encoder_weights=path, fc_width=8)
    kernel = src.get_layer("block1_conv1").get_weights()[0]                 # (3, 3, 3, 64), BGR
    got = m.get_layer("block1_conv1").get_weights()[0]                      # (3, 3, 4, 64), RGB + band 4
    np.testing.assert_allclose(got[:, :, :3], kernel[:, :, ::-1] * 0.75, rtol=1e-6)
    np.testing.assert_allclose(got[:, :, 3], kernel[:, :, 2] * 0.75, rtol=1e-6)  # band 4 starts as R
    for name in ("block3_conv2", "block5_conv3"):
        np.testing.assert_array_equal(m.get_layer(name).get_weights()[0], src.get_layer(name).get_weights()[0])
    scale = m.get_layer("input_scaling")  # caffe: 0-255 minus the ImageNet mean, bands cyclic
    np.testing.assert_allclose(scale(np.ones((1, 1, 1, 4), "float32")).numpy().ravel(),
                               255.0 - np.array([123.68, 116.779, 103.939, 123.68]), rtol=1e-6)
