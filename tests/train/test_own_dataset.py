"""A user's own dataset without borrowing a built-in name (issue 23): any data.name with data.classmap and
data.layout; an index class map without index_values (0..n-1); a class map that does not fit the masks stops
with the mask file and the problem, never an internal error from inside tf.data."""

import numpy as np
import pytest
from PIL import Image

from landseg.cli import common
from landseg.cli.train import main as train_main


@pytest.fixture
def fields(tmp_path):
    """Eight 64 x 64 scenes with single-band index masks (values 0, 1, 2)."""
    root = tmp_path / "fields"
    rng = np.random.default_rng(0)
    for i in range(8):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        mask = np.zeros((64, 64), np.uint8)
        mask[:, 20:] = 1
        mask[40:, :] = 2
        image = (rng.integers(0, 60, (64, 64, 3)) + mask[..., None] * 80).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"f{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"f{i}.png")
    return root


def _argv(tmp_path, data_dir, classmap):
    return [f"data.name=my_fields", f"data.classmap={classmap}", "data.layout=generic", f"data.data_dir={data_dir}",
            "data.crop_size=32", f"run.output_dir={tmp_path / 'runs'}", f"run.tensorboard_dir={tmp_path / 'tb'}",
            "model.name=tiny_test_net", "model.options={}", "train.epochs=1", "train.steps_per_epoch=2",
            "train.batch_size=2", "train.val_steps=1", "train.num_preview=1", "train.verbose=0"]


def test_own_name_with_an_index_class_map_trains(fields, tmp_path, capsys):
    cm = tmp_path / "fields.yaml"
    cm.write_text("class_names: [bare, crop, water]\npalette: ['#A0522D', '#FFD700', '#1E90FF']\nmask_kind: index\n")
    assert common.guarded(train_main, _argv(tmp_path, fields, cm), prog="landseg train") == 0, capsys.readouterr().err
    assert (tmp_path / "runs" / "my_fields-tiny_test_net" / "best.keras").is_file()


def test_rgb_class_dict_over_index_masks_names_the_mask(fields, tmp_path, capsys):
    cm = tmp_path / "class_dict.csv"
    cm.write_text("name,r,g,b\nbare,160,82,45\ncrop,255,215,0\nwater,30,144,255\n")
    code = common.guarded(train_main, _argv(tmp_path, fields, cm), prog="landseg train")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and "internal error" not in err and "Traceback" not in err, err
    assert "/fields/masks/f" in lines[0] and "mask values that class map 'class_dict' does not define" in lines[0]


def test_an_unknown_name_alone_says_what_to_give():
    from landseg import config as cfg

    with pytest.raises(cfg.ConfigError, match=r"'data.name': 'my_fields' is not a built-in dataset .* give any name "
                                              r"together with data.classmap .* and data.layout"):
        cfg.load_config(None, ["data.name=my_fields"])
