"""evaluate reads what the training run fixed (run artifact) instead of re-deriving it: the mask
policy of unknown colours on real Dubai tiles, the validation files, and ensembles of models."""

import json
import os

import numpy as np
import pytest

from infer_helpers import pointwise_model


def _save_run(folder, classmap_name, unknown, data_dir, split=None, seed=0):
    from landseg.classmaps import get_classmap
    from landseg.config import from_dict
    from landseg.runs import save_run
    from landseg.runs import RunFolder

    cm = get_classmap(classmap_name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best.keras"
    pointwise_model(num_classes=cm.num_classes, seed=seed).save(path)
    dataset = "synthetic" if classmap_name == "synthetic" else classmap_name
    RunFolder(folder).write_config(from_dict({"data": {"name": dataset, "data_dir": str(data_dir),
                                                        "unknown_mask_values": unknown}}).to_dict())
    save_run(folder, model="pointwise", model_options={}, classmap=cm, bands=3, size_multiple=1,
             unknown_mask_values=unknown, split=split)
    return path


def test_dubai_run_with_unknown_ignored_scores_every_new_tile(shared_data, tmp_path, capsys):
    """A model trained with data.unknown_mask_values: ignore (the Dubai recipe) evaluates a new tile whose
    masks hold black pixels no class defines: every image is scored, those pixels ignored, exit 0."""
    from landseg.cli.evaluate import main
    from landseg.classmaps import get_classmap
    from landseg.data.io import read_mask

    tile = shared_data / "dubai-aerial" / "Tile 3"
    if not tile.is_dir():
        pytest.skip(f"{tile} not found")
    new = tmp_path / "new-tiles"
    new.mkdir()
    os.symlink(tile, new / "Tile 3")  # only a link: the data stay where they are
    model = _save_run(tmp_path / "run", "dubai", "ignore", tmp_path / "training-data-not-needed")

    out = tmp_path / "eval"
    code = main(["--model", str(model), "--data-dir", str(new), "--split", "all", "--output", str(out),
                 "--tile", "256", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "metrics.json").read_text())
    masks = sorted((tile / "masks").iterdir())
    assert res["images"] == len(masks) == 9 and res["failed"] == []
    assert res["unknown_mask_values"] == "ignore"  # taken from the run, not from an option
    cm = get_classmap("dubai")
    expected = sum(int((read_mask(m, cm, unknown_to_ignore=True) != cm.ignore_index).sum()) for m in masks)
    assert res["labelled_pixels"] == expected

    # the same tile under the strict policy: the masks with black pixels fail, as they should
    code = main(["--model", str(model), "--data-dir", str(new), "--split", "all", "--output", str(tmp_path / "strict"),
                 "--tile", "256", "--no-progress", "--unknown-mask-values", "error"])
    strict = json.loads((tmp_path / "strict" / "metrics.json").read_text())
    assert code == 1 and len(strict["failed"]) >= 1 and strict["images"] + len(strict["failed"]) == 9


def test_ensemble_and_recorded_split(tmp_path, capsys):
    """--models A B scores the ensemble; --split val takes the run's recorded validation files."""
    from landseg.cli.evaluate import main
    from landseg.data.layouts import discover
    from landseg.data.synthetic import ensure_synthetic_dataset
    from landseg.inference import Predictor, load_ensemble
    from landseg.inference.evaluate import evaluate
    from landseg.classmaps import get_classmap
    from landseg.runs import split_record

    root = ensure_synthetic_dataset(tmp_path / "syn", n_images=4, size=40, seed=5)
    samples = sorted(discover(root, "generic").labelled, key=lambda s: s.image)
    split = split_record(samples[:1], samples[1:3], val_fraction=0.5, seed=0, by_group=False)
    a = _save_run(tmp_path / "a", "synthetic", "error", root, split, seed=1)
    b = _save_run(tmp_path / "b", "synthetic", "error", root, split, seed=2)

    out = tmp_path / "eval"
    assert main(["--models", str(a), str(b), "--weights", "2", "1", "--output", str(out), "--tile", "32",
                 "--no-progress"]) == 0
    res = json.loads((out / "metrics.json").read_text())
    assert res["images"] == 2 and res["split"] == "val" and res["from_run"] == "file list"
    assert res["settings"]["weights"] == [2.0, 1.0] and len(res["settings"]["ensemble"]) == 2
    predictor = Predictor(load_ensemble([str(a), str(b)], [2, 1]), tile=32)
    total, rows, _, failures = evaluate(predictor, samples[1:3], get_classmap("synthetic"))
    np.testing.assert_array_equal(np.asarray(res["confusion_matrix"]), total)
    assert not failures

    # members trained on different splits: refused, an ensemble score would mix seen images
    other = split_record(samples[1:], samples[:1], val_fraction=0.25, seed=1, by_group=False)
    c = _save_run(tmp_path / "c", "synthetic", "error", root, other, seed=3)
    assert main(["--models", str(a), str(c), "--output", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "validation split differs" in capsys.readouterr().err
