"""One self-training round end to end on a tiny synthetic dataset: train, pseudo-label, retrain with them."""

import json
from pathlib import Path

import numpy as np
import pytest

from landseg.io_utils import write_json


@pytest.mark.slow
def test_self_train_round_uses_pseudo_labels(tmp_path, caplog):
    """Round 0 is a given (untrained) model, to keep the test short; round 1 really trains."""
    from landseg.classmaps import get_classmap
    from landseg.config import from_dict
    from landseg.data.io import read_image, write_png
    from landseg.data.synthetic import generate_scene
    from landseg.models import build_model
    from landseg.data.pseudo_labels import load_pseudo_labelled
    from landseg.runs import save_run
    from landseg.inference.predict import PredictorSettings
    from landseg.training.self_train import self_train

    init = tmp_path / "init"
    init.mkdir()
    build_model("cse_unet", 6, base_width=4).save(init / "best.keras")
    save_run(init, model="cse_unet", model_options={"base_width": 4}, classmap=get_classmap("synthetic"),
                     bands=3, size_multiple=16, hist_reference=None)

    unlabelled = tmp_path / "unlabelled"
    for i in range(2):
        img, _ = generate_scene(100 + i, 48)
        write_png(unlabelled / f"u{i}.png", img)
    config = from_dict({
        "run": {"name": "st", "output_dir": str(tmp_path / "runs"), "tensorboard_dir": str(tmp_path / "tb")},
        "data": {"name": "synthetic", "data_dir": str(tmp_path / "syn"), "crop_size": 32,
                 "synthetic": {"n_images": 6, "size": 48}, "cache": False},
        "model": {"name": "cse_unet", "options": {"base_width": 4}},
        "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "val_steps": 1, "num_preview": 1, "verbose": 0},
    })
    caplog.set_level("INFO", logger="landseg")
    record = self_train(config, 1, str(unlabelled), 0.0, settings=PredictorSettings(tile=32), init_model=str(init / "best.keras"))
    r0, r1 = record["rounds"]
    assert not r0["trained"] and Path(r1["model"]).is_file()
    # 6 synthetic scenes -> 5 train + 1 val; the 2 pseudo-labelled scenes join the training side
    assert "7 training / 1 validation images" in caplog.text
    assert r1["fraction_labelled"] == 1.0  # threshold 0 labels every pixel
    samples = load_pseudo_labelled(r1["pseudo_dir"])
    assert sorted(Path(s.image).name for s in samples) == ["u0.png", "u1.png"]
    assert all(s.decoded and read_image(s.image).shape == (48, 48, 3) for s in samples)
    # the second run trained with the pseudo-label folder in its resolved config
    import yaml

    cfg = yaml.safe_load((Path(r1["run_dir"]) / "config.yaml").read_text())
    assert cfg["data"]["pseudo_label_dirs"] == [r1["pseudo_dir"]]
    assert json.loads((tmp_path / "runs" / "st-selftrain" / "self_train.json").read_text())["rounds"][1]["round"] == 1


def test_load_pseudo_labelled_names_missing_files(tmp_path):
    from landseg.data.errors import DataError
    from landseg.data.pseudo_labels import load_pseudo_labelled

    with pytest.raises(DataError, match="summary"):
        load_pseudo_labelled(tmp_path)
    write_json(tmp_path / "summary.json", {"images_dir": str(tmp_path / "imgs"), "images": [{"image": "a.png", "mask": "masks/a.png"}]})
    with pytest.raises(DataError, match="a.png.*missing"):
        load_pseudo_labelled(tmp_path)


def test_pseudo_mask_threshold():
    from landseg.inference.pseudolabel import pseudo_mask

    labels = np.array([[0, 1], [2, 3]], np.uint8)
    conf = np.array([[0.2, 0.5], [0.49, 0.9]], np.float32)
    np.testing.assert_array_equal(pseudo_mask(labels, conf, 0.5, 255), [[255, 1], [255, 3]])
