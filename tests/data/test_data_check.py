"""The data check command on planted bad files and on the real samples."""

import subprocess
import sys

import numpy as np
import pytest

from data_helpers import save
from landseg.classmaps import get_classmap
from landseg.cli.data import main

CM = get_classmap("deepglobe")


def _deepglobe_folder(root, n=3, size=(40, 50)):
    rng = np.random.default_rng(0)
    counts = np.zeros(6, int)
    for i in range(n):
        idx = rng.integers(0, 6, size).astype(np.uint8)
        counts += np.bincount(idx.ravel(), minlength=6)
        save(root / f"{i}_sat.jpg", rng.integers(0, 256, size + (3,), dtype=np.uint8))
        save(root / f"{i}_mask.png", CM.encode_rgb(idx))
    return root, counts


def _values(paths, rgb=False):
    """Independent count of raw mask values with PIL + numpy."""
    from collections import Counter

    from PIL import Image

    total = Counter()
    for p in paths:
        a = np.asarray(Image.open(p).convert("RGB") if rgb else Image.open(p))
        if rgb:
            a = a.reshape(-1, 3)
            total.update("#%02X%02X%02X" % tuple(c) for c in a[(a.astype(int).sum(1) == 0)])
        else:
            v, c = np.unique(a, return_counts=True)
            total.update(dict(zip(v.tolist(), c.tolist())))
    return total


def _run(capsys, *args):
    code = main(["check", *args])
    return code, capsys.readouterr().out


def test_clean_folder_passes_with_exact_counts(tmp_path, capsys):
    root, counts = _deepglobe_folder(tmp_path / "dg")
    code, out = _run(capsys, "--dataset", "deepglobe", "--data-dir", str(root))
    assert code == 0, out
    for name, n in zip(CM.class_names, counts):
        assert f"{name:<19}{n:>14,}" in out
    assert "pairs: 3" in out and "OK:" in out


def test_planted_problems_are_named(tmp_path, capsys, shared_data):
    root, _ = _deepglobe_folder(tmp_path / "dg", n=5)
    raw = CM.encode_rgb(np.zeros((40, 50), np.uint8))
    raw[0, :7] = (255, 0, 0)  # red is not a DeepGlobe colour
    save(root / "0_mask.png", raw)
    save(root / "1_mask.png", np.zeros((41, 50, 3), np.uint8))  # size mismatch
    data = (shared_data / "deepglobe" / "train" / "855_sat.jpg").read_bytes()
    (root / "2_sat.jpg").write_bytes(data[:5000])  # truncated JPEG
    (root / "3_mask.png").write_bytes(b"")  # empty file
    code, out = _run(capsys, "--dataset", "deepglobe", "--data-dir", str(root))
    assert code == 1
    assert f"{root / '0_mask.png'}: 7 px with values not in class map 'deepglobe': #FF0000 (7 px)" in out
    assert f"{root / '1_mask.png'}: mask is 50x41 but its image" in out
    assert f"{root / '2_sat.jpg'}: truncated image file" in out
    assert f"{root / '3_mask.png'}: file is empty" in out
    assert "#FF0000: 7 px in 1 file(s)" in out
    code, out = _run(capsys, "--dataset", "deepglobe", "--data-dir", str(root), "--unknown-to-ignore")
    assert code == 1 and "mapped to ignore: #FF0000 (7 px)" in out  # the other errors remain


def test_empty_folder_and_bad_arguments(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code, out = _run(capsys, "--dataset", "synthetic", "--data-dir", str(tmp_path))
    assert code == 1 and f"{tmp_path / 'images'}: folder holds no images" in out
    assert main(["check", "--dataset", "nope", "--data-dir", str(tmp_path)]) == 2
    assert main(["check", "--data-dir", str(tmp_path)]) == 2


def test_duplicate_masks_and_alpha(tmp_path, capsys):
    rng = np.random.default_rng(0)
    mask = np.zeros((30, 30), np.uint8)
    mask[5:15, 5:15] = 255
    for name in ("a", "b"):
        rgba = rng.integers(0, 256, (30, 30, 4), dtype=np.uint8)
        save(tmp_path / "images" / f"{name}.png", rgba)
        save(tmp_path / "labels" / f"{name}.png", mask)
    code, out = _run(capsys, "--dataset", "dida", "--data-dir", str(tmp_path))
    assert code == 1
    assert f"{tmp_path / 'labels' / 'a.png'}: identical mask in {tmp_path / 'labels' / 'b.png'}, for different images" in out
    assert "RGBA image has an alpha band" in out


def test_real_dubai_quirks(dubai_subset, capsys, tmp_path):
    code, out = _run(capsys, "--dataset", "dubai", "--data-dir", str(dubai_subset), "--json", str(tmp_path / "r.json"))
    assert code == 1
    assert "mask modes:  P x9, RGB x9" in out
    black = _values(sorted(dubai_subset.glob("*/masks/*.png")), rgb=True)["#000000"]
    per_file = _values([dubai_subset / "Tile 3" / "masks" / "image_part_006.png"], rgb=True)["#000000"]
    assert black > per_file > 0
    assert f"Tile 3/masks/image_part_006.png: {per_file} px with values not in class map 'dubai': #000000 ({per_file} px)" in out
    assert "Tile 2/masks/image_part_001.png: palette (P-mode) PNG mask" in out
    assert "classes.json: colours listed here are not the colours the masks use" in out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["unknown_colours"] == {"#000000": black} and report["pairs"] == 18
    # the description's water colour sits on the darkest pixels: water really is #E2A929
    lines = {l.split()[1]: l for l in out.splitlines() if l[:2].strip().isdigit()}
    mean = {k: np.mean([float(v) for v in l.split("(")[1].rstrip(")").split(",")]) for k, l in lines.items() if "(" in l}
    assert min(mean, key=mean.get) == "water"
    code, out = _run(capsys, "--dataset", "dubai", "--data-dir", str(dubai_subset), "--unknown-to-ignore")
    assert code == 0 and f"#000000: {black} px in 2 file(s)" in out


def test_real_deepglobe_dida_and_index_sets(deepglobe_pair, shared_data, capsys):
    code, out = _run(capsys, "--dataset", "deepglobe", "--data-dir", str(deepglobe_pair))
    assert code == 0 and "binarization: every mask pixel is a pure 0/255 colour" in out
    code, out = _run(capsys, "--dataset", "dida", "--data-dir", str(shared_data / "dida-roofs"))
    assert code == 1 and "pairs: 25   unlabelled images: 5" in out
    assert "labels/270.png: identical mask in" in out and "labels/278.png" in out
    assert "anti-aliased levels strictly between 0 and 255" in out
    code, out = _run(capsys, "--dataset", "loveda", "--data-dir", str(shared_data / "loveda"))
    assert code == 0 and "classes with no pixels: barren" in out
    values = _values(sorted((shared_data / "loveda" / "ann_dir").glob("*.png")))
    assert "raw mask values present: " + ", ".join(f"{v}: {c:,}" for v, c in sorted(values.items())) in out


def test_command_line_entry_point(shared_data):
    out = subprocess.run([sys.executable, "-m", "landseg.data", "check", "--dataset", "potsdam", "--data-dir",
                          str(shared_data / "potsdam")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    values = _values(sorted((shared_data / "potsdam" / "ann_dir").glob("*.png")))
    assert "raw mask values present: " + ", ".join(f"{v}: {c:,}" for v, c in sorted(values.items())) in out.stdout
