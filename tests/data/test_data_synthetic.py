"""The synthetic dataset: deterministic, exact masks, idempotent and atomic writing."""

import numpy as np

from landseg.classmaps import get_classmap
from landseg.data.io import read_image, read_mask
from landseg.data.layouts import discover
from landseg.data.synthetic import FOREST, WATER, ensure_synthetic_dataset, generate_scene


def test_deterministic_and_varied():
    a, b = generate_scene(7, 96), generate_scene(7, 96)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = generate_scene(8, 96)
    assert not np.array_equal(a[1], c[1])
    assert a[0].shape == (96, 96, 3) and a[0].dtype == np.uint8 and a[1].dtype == np.uint8


def test_every_class_appears_and_textures_differ():
    counts = np.zeros(6)
    texture = {k: [] for k in range(6)}
    for seed in range(12):
        image, mask = generate_scene(seed, 128)
        counts += np.bincount(mask.ravel(), minlength=6)
        grey = image.astype(float).mean(-1)
        # local texture: mean absolute difference to the right-hand neighbour, inside each class
        diff = np.abs(np.diff(grey, axis=1))
        same = mask[:, 1:] == mask[:, :-1]
        for k in range(6):
            sel = same & (mask[:, 1:] == k)
            if sel.sum() > 50:
                texture[k].append(diff[sel].mean())
    assert (counts > 0).all() and mask.max() <= 5
    assert counts.min() / counts.sum() > 0.02  # no class is vanishingly rare
    # water is smooth, forest canopy is rough: classes differ in texture, not only colour
    assert np.mean(texture[WATER]) < 0.5 * np.mean(texture[FOREST])


def test_ensure_dataset_is_idempotent(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "syn", n_images=3, size=48, seed=1)
    files = discover(root, "generic")
    assert len(files.labelled) == 3 and all(s.decoded for s in files.labelled)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert ensure_synthetic_dataset(tmp_path / "syn", n_images=3, size=48, seed=1) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamp
    image, mask = generate_scene(1 * 1_000_003 + 2, 48)
    s = files.labelled[2]
    np.testing.assert_array_equal(read_image(s.image), image)
    np.testing.assert_array_equal(read_mask(s.mask, get_classmap("synthetic"), decoded=True), mask)
    # different parameters rebuild the folder, leaving no temporary folders behind
    ensure_synthetic_dataset(tmp_path / "syn", n_images=2, size=48, seed=1)
    assert len(list((root / "images").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]
