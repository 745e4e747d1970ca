"""Exported SavedModel / ONNX / TFLite outputs equal Keras' within the stated tolerance."""

import json

import numpy as np
import pytest

pytest.importorskip("landseg.runs", reason="the run artifact module arrives with the restructure")
from landseg.export import TOLERANCES, ExportError, check_sample, export_model, run_onnx, run_tflite

from geo_helpers import tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny 4-band model saved with a run artifact and a raster normalisation beside it."""
    from landseg.classmaps import get_classmap
    from landseg.data.raster import Normalisation
    from landseg.runs import RunFolder
    from landseg.runs import save_run

    d = tmp_path_factory.mktemp("run")
    model = tiny_model(6, 4, seed=3)
    model.save(d / "best.keras")
    save_run(d, model="test_tiny", model_options={}, classmap=get_classmap("synthetic"), bands=4, size_multiple=4)
    Normalisation(bands=(1, 2, 3, 4), lo=(10,) * 4, hi=(3000,) * 4).save(RunFolder(d).raster_normalisation)
    return model, d / "best.keras"


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_matches_keras(saved, tmp_path, fmt):
    model, path = saved
    r = export_model(path, fmt, tmp_path / fmt, tile=32)
    assert r.max_abs_diff <= TOLERANCES[fmt] and r.argmax_agreement == 1.0
    # independent re-check on a different batch size and sample
    x = check_sample(32, 4, n=3, seed=9)
    got = (run_onnx if fmt == "onnx" else run_tflite)(r.path, x)
    np.testing.assert_allclose(got, model.predict_on_batch(x), atol=TOLERANCES[fmt])
    info = json.loads((tmp_path / fmt / "landseg_export.json").read_text())
    assert info["input"]["shape"] == [None, 32, 32, 4]
    assert info["input"]["raster_normalisation"]["hi"] == [3000.0] * 4
    assert len(info["classes"]["names"]) == 6 and info["size_policy"]["size_multiple"] == 4
    assert info["check"]["max_abs_diff"] <= info["check"]["tolerance"]


def test_export_savedmodel(saved, tmp_path):
    r = export_model(saved[1], "savedmodel", tmp_path, tile=32)
    assert r.max_abs_diff <= TOLERANCES["savedmodel"]


def test_cse_unet_exports_to_onnx(tmp_path):
    """The real model (custom layers, bilinear upsampling) through Keras' ONNX exporter."""
    from landseg.classmaps import get_classmap
    from landseg.models import build_model
    from landseg.runs import save_run

    model = build_model("cse_unet", 6, input_shape=(None, None, 3), base_width=4)
    model.save(tmp_path / "best.keras")
    save_run(tmp_path, model="cse_unet", model_options={"base_width": 4}, classmap=get_classmap("synthetic"), bands=3,
             size_multiple=16)
    r = export_model(tmp_path / "best.keras", "onnx", tmp_path / "onnx", tile=64)
    assert r.max_abs_diff <= TOLERANCES["onnx"]


def test_export_refuses_bad_requests(saved, tmp_path):
    with pytest.raises(ExportError, match="format"):
        export_model(saved[1], "coreml", tmp_path)
    with pytest.raises(ExportError, match="multiple"):
        export_model(saved[1], "onnx", tmp_path, tile=30)
    with pytest.raises(ExportError, match="not found"):
        export_model(tmp_path / "none.keras", "onnx", tmp_path)
