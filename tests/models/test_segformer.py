"""SegFormer's MiT encoder loads a keras-hub MiT preset folder offline: every weight exactly,
and the same features as keras-hub's own MiTBackbone; anything else is a clear error."""

import json

import numpy as np
import pytest

from landseg.models import WeightsNotFoundError, build_model
from landseg.models.segformer import HEADS, MIT_SIZES, PATCH_SIZES, SR_RATIOS, STRIDES


@pytest.fixture(scope="module")
def mit_b0_preset(tmp_path_factory):
    """A randomly initialised MiT-b0 saved as a keras-hub preset folder, as save_to_preset writes one."""
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed: segformer's preset loading "
                                                        "needs it (pip install -e '.[segformer]', see the README)")
    dims, depths = MIT_SIZES["b0"]
    hub = keras_hub.models.MiTBackbone(
        image_shape=(64, 64, 3), num_layers=4, hidden_dims=list(dims), layerwise_depths=list(depths),
        layerwise_num_heads=list(HEADS), layerwise_sr_ratios=list(SR_RATIOS), layerwise_patch_sizes=list(PATCH_SIZES),
        layerwise_strides=list(STRIDES), max_drop_path_rate=0.1)
    path = tmp_path_factory.mktemp("presets") / "mit_b0"
    hub.save_to_preset(str(path))
    return hub, path


def test_preset_folder_loads_every_weight_and_gives_keras_hubs_features(mit_b0_preset, no_network):
    import keras

    hub, path = mit_b0_preset
    model = build_model("segformer", num_classes=6, input_shape=(64, 64, 3), encoder_weights=str(path))
    ours = [np.asarray(w) for l in model.layers if l.name.startswith("encoder_") for w in l.weights]
    theirs = [np.asarray(w) for w in hub.weights]
    assert len(ours) == len(theirs) == 192  # 4 stages x (patch conv + norm, blocks, stage norm)
    # every keras-hub weight is in our encoder, unchanged (random values: equal arrays are the same weight)
    key = lambda a: (a.shape, a.tobytes())  # noqa: E731
    assert sorted(map(key, ours)) == sorted(map(key, theirs))

    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    ref = keras.Model(hub.input, hub.pyramid_outputs)(((x - mean) / std).astype(np.float32))
    probe = keras.Model(model.input, [model.get_layer(f"encoder_stage{i}_norm").output for i in range(4)])
    for i, got in enumerate(probe(x)):
        want = np.asarray(ref[f"P{i + 1}"])
        assert got.shape == want.shape and np.abs(np.asarray(got) - want).max() < 1e-5 * np.abs(want).max()


def test_preset_errors_say_how_to_make_a_folder(mit_b0_preset, tmp_path, no_network):
    _, path = mit_b0_preset
    with pytest.raises(WeightsNotFoundError, match=r"(?s)mit_b0_ade20k_512: not a folder.*never downloads.*save_to_preset"):
        build_model("segformer", 6, encoder_weights="mit_b0_ade20k_512")
    with pytest.raises(ValueError, match=r"config.json: MiT with hidden dims \[32, 64, 160, 256\].*size 'b1'.*pass size='b0'"):
        build_model("segformer", 6, size="b1", encoder_weights=str(path))
    other = tmp_path / "not_mit"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"class_name": "ResNetBackbone", "config": {}}))
    with pytest.raises(ValueError, match="holds a 'ResNetBackbone' preset; .* needs a MiTBackbone preset"):
        build_model("segformer", 6, encoder_weights=str(other))


def test_missing_keras_hub_says_what_to_install(tmp_path, monkeypatch):
    """A preset folder (its config.json is all that is read before keras-hub) without keras-hub installed."""
    import sys

    from landseg.models.encoders import PretrainedPackageMissing

    dims, depths = MIT_SIZES["b0"]
    (tmp_path / "config.json").write_text(json.dumps({"class_name": "MiTBackbone", "config": {
        "hidden_dims": list(dims), "layerwise_depths": list(depths), "layerwise_num_heads": list(HEADS),
        "layerwise_sr_ratios": list(SR_RATIOS), "layerwise_patch_sizes": list(PATCH_SIZES),
        "layerwise_strides": list(STRIDES)}}))
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub -> ImportError, as when absent
    with pytest.raises(PretrainedPackageMissing, match=r'pip install -e "\.\[segformer\]" && pip install --no-deps'):
        build_model("segformer", 6, decoder_width=8, encoder_weights=str(tmp_path))
