"""Nothing a user already has is lost (issue 24): every writing stage refuses, before any work, an output
layout that would write over an input, a label or a file it did not write itself; inputs it cannot read
(special files, loops, folders named like images, all-NaN rasters) are reported by name, never dropped.

Planted faults on real files: every test hashes the files that existed before the command and checks
that not one changed."""

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from landseg.cli import common
from landseg.cli.evaluate import main as evaluate_main
from landseg.cli.predict import main as predict_main
from landseg.cli.pseudolabel import main as pseudolabel_main

from infer_helpers import pointwise_model, random_image
from test_cli import save_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_model(pointwise_model(num_classes=6, seed=3), tmp_path_factory.mktemp("m") / "run")


def _png(path: Path, seed: int, size=(24, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_image(*size, seed=seed)).save(path)
    return path


def _mask(path: Path, seed: int, size=(24, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 6, size, dtype=np.uint8)).save(path)
    return path


def hashes(root: Path) -> dict[str, str]:
    """sha1 of every regular file under ``root`` (symlinks not followed)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def unchanged(before: dict, root: Path) -> list[str]:
    after = hashes(root)
    return [p for p, h in before.items() if after.get(p) != h]


def _run(main, argv, capsys):
    code = common.guarded(main, argv, prog="landseg test")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


@pytest.mark.parametrize("sub", ["colour", "classes"])
def test_predict_into_the_folder_holding_its_input_is_refused(model, tmp_path, capsys, sub):
    out = tmp_path / "OUT"
    for i in range(3):
        _png(out / sub / f"scene{i}.png", seed=i)
    before = hashes(tmp_path)
    code, err = _run(predict_main, ["--models", str(model), "--input", str(out / sub), "--output", str(out),
                                    "--no-progress"], capsys)
    assert code == 2 and f"{sub}/" in err and "input folder" in err, err
    assert len(err.strip().splitlines()) == 1
    assert unchanged(before, tmp_path) == []


def test_pseudolabel_over_the_hand_labels_is_refused(model, tmp_path, capsys):
    ds = tmp_path / "ds"
    for i in range(3):
        _png(ds / "images" / f"t{i}.png", seed=i)
        _mask(ds / "masks" / f"t{i}.png", seed=10 + i)
    before = hashes(tmp_path)
    code, err = _run(pseudolabel_main, ["--models", str(model), "--input", str(ds / "images"), "--output", str(ds),
                                        "--threshold", "0.5", "--no-progress"], capsys)
    assert code == 2 and str(ds / "masks" / "t0.png") in err and "was not written by landseg pseudolabel" in err, err
    assert unchanged(before, tmp_path) == []


def test_a_rerun_overwrites_only_its_own_outputs(model, tmp_path, capsys):
    scenes = tmp_path / "scenes"
    _png(scenes / "a.png", seed=1)
    out = tmp_path / "out"
    argv = ["--models", str(model), "--input", str(scenes), "--output", str(out), "--no-progress", "--overwrite"]
    assert _run(predict_main, argv, capsys)[0] == 0
    assert _run(predict_main, argv, capsys)[0] == 0  # its own files: written again
    _png(scenes / "b.png", seed=2)  # a new scene, and a file of the user's where its overlay would go
    _png(out / "overlay" / "b.png", seed=9)
    before = hashes(tmp_path)
    code, err = _run(predict_main, argv, capsys)
    assert code == 2 and str(out / "overlay" / "b.png") in err, err
    assert unchanged(before, tmp_path) == []


def test_evaluate_into_a_run_folder_keeps_its_files(model, tmp_path, capsys):
    data = tmp_path / "data"
    _png(data / "images" / "x.png", seed=4)
    _mask(data / "masks" / "x.png", seed=5)
    run = Path(model).parent
    (run / "confusion_matrix.png").write_bytes(b"the run's own picture")
    before = hashes(run)
    code, err = _run(evaluate_main, ["--model", str(model), "--dataset", "synthetic", "--data-dir", str(data),
                                     "--split", "all", "--output", str(run), "--no-progress"], capsys)
    assert code == 2 and str(run) in err, err
    assert unchanged(before, run) == []
    (run / "confusion_matrix.png").unlink()


def test_export_keeps_a_users_file_inside_saved_model(model, tmp_path):
    from landseg.export import export_model
    from landseg.output_folders import OutputConflict

    out = tmp_path / "export"
    export_model(model, "savedmodel", out, tile=32, check=False)
    export_model(model, "savedmodel", out, tile=32, check=False)  # its own folder: replaced
    (out / "saved_model" / "notes.txt").write_text("mine")
    before = hashes(tmp_path)
    with pytest.raises(OutputConflict, match="notes.txt"):
        export_model(model, "savedmodel", out, tile=32, check=False)
    assert unchanged(before, tmp_path) == []


# ----------------------------------------------------------------------------- layouts, fuzzed
LAYOUTS = ["input_inside_output", "output_inside_input", "same_folder", "output_sub_is_input", "symlinked_output",
           "symlinked_sub", "masks_beside", "separate"]


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.sampled_from(LAYOUTS), stage=st.sampled_from(["predict", "pseudolabel"]),
       sub=st.sampled_from(["colour", "classes", "masks", "overlay", "confidence"]), n=st.integers(1, 2))
def test_no_output_layout_changes_a_file_that_existed(model, tmp_path_factory, layout, stage, sub, n):
    from landseg.inference.predict import predict_folder
    from landseg.inference.pseudolabel import pseudolabel
    from landseg.output_folders import OutputConflict

    root = tmp_path_factory.mktemp("layout")
    out, inp = {
        "input_inside_output": (root / "o", root / "o" / "images"),
        "output_inside_input": (root / "i" / "pred", root / "i"),
        "same_folder": (root / "x", root / "x"),
        "output_sub_is_input": (root / "o", root / "o" / sub),
        "symlinked_output": (root / "link", root / "i"),
        "symlinked_sub": (root / "o", root / "i"),
        "masks_beside": (root / "ds", root / "ds" / "images"),
        "separate": (root / "o", root / "i"),
    }[layout]
    for i in range(n):
        _png(inp / f"s{i}.png", seed=i)
    if layout == "symlinked_output":
        os.symlink(inp, root / "link")
    if layout == "symlinked_sub":
        out.mkdir()
        os.symlink(inp, out / sub)
    if layout == "masks_beside":
        for i in range(n):
            _mask(out / "masks" / f"s{i}.png", seed=20 + i)
    before = hashes(root)
    try:
        if stage == "predict":
            predict_folder([model], inp, out)
        else:
            pseudolabel([model], inp, out, 0.5)
    except OutputConflict:
        pass
    assert unchanged(before, root) == []


# ----------------------------------------------------------------------------- unreadable inputs are named
def test_special_files_among_the_inputs_are_listed_as_failed(model, tmp_path, capsys):
    scenes = tmp_path / "scenes"
    _png(scenes / "good.png", seed=1)
    os.mkfifo(scenes / "pipe.png")
    (scenes / "folder.jpg").mkdir()
    os.symlink(scenes / "loop_b.png", scenes / "loop_a.png")
    os.symlink(scenes / "loop_a.png", scenes / "loop_b.png")
    out = tmp_path / "out"
    code, err = _run(predict_main, ["--models", str(model), "--input", str(scenes), "--output", str(out),
                                    "--no-progress"], capsys)
    assert code == 1, err
    for name, why in (("pipe.png", "FIFO"), ("folder.jpg", "folder"), ("loop_a.png", "loop")):
        assert name in err and why in err, (name, err)
    import json

    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["written"] == ["good.png"] and len(summary["failed"]) == 4


def test_evaluate_names_an_unreadable_mask_and_counts_what_it_left_out(model, tmp_path, capsys):
    data = tmp_path / "data"
    for i in range(2):
        _png(data / "images" / f"s{i}.png", seed=i)
    _mask(data / "masks" / "s0.png", seed=7)
    os.mkfifo(data / "masks" / "s1.png")
    _png(data / "images" / "unlabelled.png", seed=3)
    code, err = _run(evaluate_main, ["--model", str(model), "--dataset", "synthetic", "--data-dir", str(data),
                                     "--split", "all", "--output", str(tmp_path / "ev"), "--no-progress"], capsys)
    assert code == 1, err
    assert "s1.png" in err and "FIFO" in err
    assert "on 1 scene(s), 1 failed, 1 left out (no mask)" in err


def test_an_all_nan_geotiff_is_a_failure_not_an_empty_map(model, tmp_path, capsys):
    rasterio = pytest.importorskip("rasterio")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    profile = dict(driver="GTiff", width=32, height=32, count=3, dtype="float32")
    with rasterio.open(scenes / "nan.tif", "w", **profile) as ds:
        ds.write(np.full((3, 32, 32), np.nan, np.float32))
    out = tmp_path / "out"
    code, err = _run(predict_main, ["--models", str(model), "--input", str(scenes), "--output", str(out),
                                    "--no-progress"], capsys)
    assert code == 1 and "nan.tif" in err and "no valid pixel" in err, err
    assert not (out / "classes" / "nan.tif").exists()


def test_synthetic_data_never_replaces_a_users_folder(tmp_path):
    from landseg.data.synthetic import ensure_synthetic_dataset
    from landseg.output_folders import OutputConflict

    mine = tmp_path / "my_dataset"
    _png(mine / "images" / "field.png", seed=1)
    before = hashes(tmp_path)
    with pytest.raises(OutputConflict, match="not a synthetic dataset written by landseg"):
        ensure_synthetic_dataset(mine, n_images=2, size=32)
    assert unchanged(before, tmp_path) == []
    shutil.rmtree(mine / "images")
    assert ensure_synthetic_dataset(mine, n_images=2, size=32) == mine  # an empty folder may be used
