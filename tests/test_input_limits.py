"""No input makes landseg hang or answer wrongly in silence (issue 24): configs and class maps are read
with limits, numbers are range-checked before any folder exists, class names are unique and non-empty,
and messages about pixel values say what is wrong in the user's terms. Planted faults, real files."""

import numpy as np
import pytest

from landseg import config as cfg
from landseg.classmaps import load_classmap


def billion_laughs(levels: int = 12) -> str:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_config_is_refused_at_once(tmp_path):
    f = tmp_path / "laughs.yaml"
    f.write_text(billion_laughs() + "data:\n  pseudo_label_dirs: *lol11\n")
    with pytest.raises(cfg.ConfigError, match=r"laughs.yaml: refused: the document expands to more than"):
        cfg.load_config(f)


def test_alias_bomb_in_an_override_and_a_class_map_are_refused(tmp_path):
    bomb = "[" + ", ".join(["&a [1, 2, 3, 4, 5, 6, 7, 8, 9]"] + ["*a"] * 8) + "]"
    nested = bomb
    for _ in range(6):
        nested = nested.replace("*a", "[*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]")
    with pytest.raises(cfg.ConfigError, match="refused"):
        cfg.load_config(None, [f"data.pseudo_label_dirs={nested}"])
    cm = tmp_path / "cm.yaml"
    cm.write_text(billion_laughs() + "class_names: *lol11\n")
    with pytest.raises(ValueError, match=r"cm.yaml: refused"):
        load_classmap(cm)


def test_a_huge_scalar_is_refused_by_size(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text('run:\n  name: "' + "x" * (2 << 20) + '"\n')
    with pytest.raises(cfg.ConfigError, match=r"big.yaml: refused: .* bytes"):
        cfg.load_config(f)


@pytest.mark.parametrize("override, key, rng", [
    ("train.batch_size=1000000000000000000000000000000", "train.batch_size", "<= 4096"),
    ("train.epochs=1000000000000000000000000000000", "train.epochs", "<= 100000"),
    ("data.crop_size=1048576", "data.crop_size", "<= 8192"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay", ">= 0"),
])
def test_numbers_out_of_range_name_the_key_and_range_before_any_folder(tmp_path, override, key, rng):
    from landseg.training import run_training

    with pytest.raises(cfg.ConfigError, match=rf"'{key}': .* is out of range; it must be .*{rng}"):
        run_training({"run": {"output_dir": str(tmp_path / "runs"), "tensorboard_dir": str(tmp_path / "tb")},
                      **_nested(override)})
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tb").exists()


def _nested(override: str) -> dict:
    key, value = override.split("=")
    section, name = key.split(".")
    return {section: {name: int(value)}}


def test_a_step_too_large_for_memory_names_batch_and_crop(tmp_path):
    from landseg.training import run_training

    with pytest.raises(cfg.ConfigError, match=r"'train.batch_size'=4096 and 'data.crop_size'=8192: one training step "
                                              r"needs at least .* GiB"):
        run_training({"run": {"output_dir": str(tmp_path / "runs")}, "train": {"batch_size": 4096},
                      "data": {"crop_size": 8192}})
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- class maps
def test_two_classes_with_one_name_are_refused(tmp_path):
    f = tmp_path / "class_dict.csv"
    f.write_text("name,r,g,b\nred,255,0,0\nred,200,0,0\ngreen,0,255,0\n")
    with pytest.raises(ValueError, match=r"two classes are named 'red'"):
        load_classmap(f)
    f.write_text("name,r,g,b\nred,255,0,0\n ,0,0,255\ngreen,0,255,0\n")
    with pytest.raises(ValueError, match=r"class 1 has an empty name"):
        load_classmap(f)


def test_class_dict_with_byte_order_mark_and_crlf_is_read(tmp_path):
    f = tmp_path / "class_dict.csv"
    f.write_bytes("\ufeffname,r,g,b\r\nfield,255,255,0\r\nforest,0,255,0\r\nunknown,0,0,0\r\n".encode("utf-8"))
    cm = load_classmap(f)
    assert cm.class_names == ("field", "forest") and cm.ignore_colors == ((0, 0, 0),)


def test_too_many_classes_say_the_limit(tmp_path):
    f = tmp_path / "many.yaml"
    f.write_text("mask_kind: index\nclass_names: [" + ", ".join(f"c{i}" for i in range(300)) + "]\npalette: ["
                 + ", ".join("[0, 0, 0]" for _ in range(300)) + "]\nindex_values: [" + ", ".join(map(str, range(300)))
                 + "]\n")
    with pytest.raises(ValueError, match=r"has 300 classes; at most 255 fit"):
        load_classmap(f)


# ----------------------------------------------------------------------------- pixel values
def test_float_images_say_nan_or_fractions(tmp_path):
    from landseg.data.errors import DataError
    from landseg.data.io import read_image
    import tifffile

    nan = np.full((8, 8, 3), 0.5, np.float32)
    nan[0, 0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tiff", nan)
    frac = np.linspace(0, 0.99, 192, dtype=np.float32).reshape(8, 8, 3)
    tifffile.imwrite(tmp_path / "frac.tiff", frac)
    with pytest.raises(DataError, match=r"nan.tiff: image has 1 NaN/inf value\(s\) of 192"):
        read_image(tmp_path / "nan.tiff")
    with pytest.raises(DataError, match=r"frac.tiff: image has fractional float32 values \(0..0.99\)"):
        read_image(tmp_path / "frac.tiff")
