"""Every model's BatchNorm suits short CPU runs: moving statistics follow the data within
tens of steps (momentum 0.9), or are pretrained statistics kept fixed."""

import keras
import pytest

from landseg.models import build_model
from landseg.models.encoders.efficientnet_lite import FrozenStatsBatchNorm

CASES = [("cse_unet", {"base_width": 4}), ("unet", {"backbone": "resnet18"}), ("linknet", {"backbone": "resnet18"}),
         ("lite_unet", {}), ("deeplabv3_resnet50", {"aspp_filters": 16}),
         ("deeplabv3plus", {"encoder": "mobilenet_v2", "aspp_filters": 16}),
         ("segformer", {"decoder_width": 16}), ("multires_unet", {"base_width": 4})]


def _bns(model):
    return [l for l in model._flatten_layers(include_self=False) if isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name,options", CASES, ids=[c[0] for c in CASES])
def test_batchnorm_momentum_fits_short_runs(name, options):
    bns = _bns(build_model(name, 3, **options))
    assert bns, name
    slow = [l.name for l in bns if l.momentum > 0.9 and not isinstance(l, FrozenStatsBatchNorm)]
    assert not slow, f"{name}: BatchNorm with momentum > 0.9: {slow[:5]}"


def test_sm_momentum_survives_save_and_load(tmp_path):
    from landseg.models import load_model

    model = build_model("unet", 3, backbone="resnet18")
    path = tmp_path / "m.keras"
    model.save(path)
    assert {l.momentum for l in _bns(load_model(path))} == {0.9}
