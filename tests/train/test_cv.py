"""Scene-level k-fold cross-validation (issue 21): folds by scene group, every image validated exactly once
and never trained on in its own fold, one ordinary run per fold, a summary whose mean is the folds' mean,
a resumable stage, and a clear error for more folds than scene groups."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landseg import config as cfg
from landseg.cli import common
from landseg.training import cv


def test_folds_deal_every_group_once():
    groups = [f"g{i}" for i in range(7)]
    folds = cv.assign_folds(groups, 3, seed=5)
    flat = [g for f in folds for g in f]
    assert sorted(flat) == sorted(groups) and len(flat) == len(set(flat))
    assert sorted(len(f) for f in folds) == [2, 2, 3]
    assert folds == cv.assign_folds(list(reversed(groups)), 3, seed=5)  # input order does not matter
    from landseg.errors import OptionError

    with pytest.raises(OptionError, match=r"folds 8 is more than the dataset's 7 scene group\(s\).*use 7 or fewer"):
        cv.assign_folds(groups, 8, 0)


@pytest.fixture
def deepglobe_six(shared_data, tmp_path):
    """Six real DeepGlobe scenes, each cut to its central 256 x 256 (the CV stage does not care about size)."""
    src = shared_data / "deepglobe" / "train"
    out = tmp_path / "dg6"
    out.mkdir()
    for sat in sorted(src.glob("*_sat.jpg"))[:6]:
        stem = sat.name[: -len("_sat.jpg")]
        for suffix, ext in (("_sat", ".jpg"), ("_mask", ".png")):
            im = Image.open(src / f"{stem}{suffix}{ext}")
            w, h = im.size
            im.crop((w // 2 - 128, h // 2 - 128, w // 2 + 128, h // 2 + 128)).save(out / f"{stem}{suffix}{ext}")
    return out


def test_cv_over_six_real_deepglobe_scenes(deepglobe_six, tmp_path, capsys):
    from landseg.cli.cv import main as cv_main

    argv = ["--folds", "3", "--no-progress", "data.name=deepglobe", f"data.data_dir={deepglobe_six}",
            "data.crop_size=64", f"run.output_dir={tmp_path / 'runs'}", f"run.tensorboard_dir={tmp_path / 'tb'}",
            "run.name=dg", "model.name=tiny_test_net", "model.options={}", "train.epochs=1",
            "train.steps_per_epoch=2", "train.batch_size=2", "train.val_steps=2", "train.num_preview=0",
            "train.verbose=0"]
    assert common.guarded(cv_main, argv, prog="landseg cv") == 0, capsys.readouterr().err
    cv_dir = tmp_path / "runs" / "dg-cv3"
    summary = json.loads((cv_dir / "cv_summary.json").read_text())
    vals = [r["val"] for r in summary["folds"]]
    assert len(vals) == 3 and all(vals)
    flat = [p for v in vals for p in v]
    assert sorted(flat) == sorted(str(p) for p in deepglobe_six.glob("*_sat.jpg"))  # every scene once
    assert len(flat) == len(set(flat))
    for r in summary["folds"]:  # never trained on in its own fold: the run's recorded split says so
        info = json.loads((Path(r["run"]) / "model_info.json").read_text())
        trained = {s["image"] for s in info["split"]["train"]}
        assert trained.isdisjoint(r["val"]) and sorted(s["image"] for s in info["split"]["val"]) == sorted(r["val"])
        assert (Path(r["run"]) / "eval_cv" / "metrics.json").is_file()
    assert summary["mean"] == pytest.approx(np.mean([r["miou"] for r in summary["folds"]]))
    assert summary["std"] == pytest.approx(np.std([r["miou"] for r in summary["folds"]], ddof=1))
    for name, d in summary["per_class"].items():
        got = [r["per_class"][name] for r in summary["folds"] if r["per_class"][name] is not None]
        assert d["n"] == len(got) and (not got or d["mean"] == pytest.approx(np.mean(got)))
    assert (cv_dir / "cv_summary.md").is_file() and (cv_dir / "cv_report.html").is_file()

    # started again: every fold is finished and scored, so nothing trains and the summary is the same
    stamps = {r["run"]: (Path(r["run"]) / "best.keras").stat().st_mtime_ns for r in summary["folds"]}
    assert common.guarded(cv_main, argv, prog="landseg cv") == 0
    again = json.loads((cv_dir / "cv_summary.json").read_text())
    assert again["mean"] == summary["mean"]
    assert stamps == {r["run"]: (Path(r["run"]) / "best.keras").stat().st_mtime_ns for r in again["folds"]}
    assert sorted(p.name for p in (cv_dir / "seed-0").iterdir()) == ["fold-0", "fold-1", "fold-2"]


def test_a_killed_cv_continues_its_unfinished_fold(tiny_config, tmp_path):
    """A fold whose run stopped mid-way (its state not finished) is continued, not started over."""
    from landseg.runs import RunFolder

    base = cfg.from_dict(tiny_config(run={"name": "cvtiny"}, data={"split_by_group": False}))
    first = cv.run_cv(base, 3)
    fold_dir = Path(first["folds"][1]["run"])
    state = RunFolder(fold_dir).read_state()
    state.update(finished=False, epochs_completed=1)
    state["history"] = state["history"][:1]
    RunFolder(fold_dir).write_state(state)  # as if killed after epoch 1 of 2
    again = cv.run_cv(base, 3)
    after = RunFolder(fold_dir).read_state()
    assert after["finished"] and after["epochs_completed"] == 2
    assert [r["run"] for r in again["folds"]] == [r["run"] for r in first["folds"]]


def test_more_folds_than_scene_groups_is_one_line(tiny_config, capsys):
    from landseg.cli.cv import main as cv_main

    c = tiny_config()
    argv = ["--folds", "13", f"run.output_dir={c['run']['output_dir']}", f"data.data_dir={c['data']['data_dir']}",
            "data.synthetic.n_images=12", "data.synthetic.size=64"]
    assert common.guarded(cv_main, argv, prog="landseg cv") == 2
    err = capsys.readouterr().err
    assert "--folds 13 is more than the dataset's 12 scene group(s)" in err and len(err.strip().splitlines()) == 1
    assert not Path(c["run"]["output_dir"]).exists()
