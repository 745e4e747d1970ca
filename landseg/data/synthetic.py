"""Procedural land-cover scenes with exactly matching masks, so landseg runs without a dataset.

Each class has its own *texture* as well as its own colour range (fields have rows at a
random angle, forest has blobby canopy, water is smooth, roads are thin grey lines,
buildings are small rectangular roofs with a lit and a shaded half, bare ground is
mottled), and colours overlap between classes (golden fields vs tan bare ground, grey
roads vs grey roofs), so a model must learn texture and shape, not a colour lookup.
The image is painted from the label map pixel by pixel, so the mask is exact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from landseg.classmaps import get_classmap

AGRICULTURE, FOREST, WATER, ROAD, BUILDING, BARE = range(6)
GENERATOR = "landseg.data.synthetic"  # synthetic.json's mark of a folder this module wrote
GENERATOR_VERSION = 1


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise: blobs about ``sigma`` pixels across."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-8)


def _layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """The label map: Voronoi parcels (fields / forest / bare), then water, roads, buildings."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    n_parcels = int(rng.integers(5, 11))
    seeds = rng.uniform(0, size, (n_parcels, 2))
    # Slightly warped distances give irregular, natural-looking parcel borders.
    warp = _smooth_noise(rng, (size, size), size / 10) * size * 0.04
    d = (yy[None] + warp - seeds[:, 0, None, None]) ** 2 + (xx[None] - warp - seeds[:, 1, None, None]) ** 2
    parcel = d.argmin(0)
    parcel_class = rng.choice([AGRICULTURE, FOREST, BARE], size=n_parcels, p=[0.45, 0.33, 0.22])
    labels = parcel_class[parcel].astype(np.uint8)

    if rng.random() < 0.75:  # a lake or a river
        if rng.random() < 0.5:
            field = _smooth_noise(rng, (size, size), size / 7)
            labels[field > np.quantile(field, rng.uniform(0.78, 0.9))] = WATER
        else:
            theta = rng.uniform(0, np.pi)
            offset = rng.uniform(0.25, 0.75) * size
            meander = _smooth_noise(rng, (size, size), size / 6) * size * 0.06
            dist = (xx - size / 2) * np.sin(theta) - (yy - size / 2) * np.cos(theta) + size / 2 - offset + meander
            labels[np.abs(dist) < rng.uniform(0.04, 0.08) * size] = WATER

    roads = np.zeros((size, size), bool)
    for _ in range(int(rng.choice([0, 1, 2, 2, 3]))):
        theta = rng.uniform(0, np.pi)
        y0, x0 = rng.uniform(0.15, 0.85, 2) * size
        width = rng.uniform(3, 5) * size / 128
        dist = np.abs((xx - x0) * np.sin(theta) - (yy - y0) * np.cos(theta))
        road = dist < width / 2
        roads |= road
        # Buildings line the road on both sides, set back a little.
        for _ in range(int(rng.integers(5, 12))):
            t = rng.uniform(-size, size)
            side = rng.choice([-1, 1])
            setback = width / 2 + rng.uniform(2, 6) * size / 128
            h, w = rng.uniform(6, 13, 2) * size / 128
            cy = y0 + t * np.sin(theta) - side * (setback + h / 2) * np.cos(theta)
            cx = x0 + t * np.cos(theta) + side * (setback + w / 2) * np.sin(theta)
            box = (np.abs(yy - cy) < h / 2) & (np.abs(xx - cx) < w / 2) & (labels != WATER) & ~road
            labels[box] = BUILDING
    labels[roads] = ROAD
    return labels


def _paint(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Render an RGB image from the label map: one texture generator per class."""
    size = labels.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32)
    fine = rng.standard_normal((size, size, 3)).astype(np.float32)

    # Fields: rows at a per-parcel angle and spacing, colour from ripe to green.
    comp, n = ndimage.label(labels == AGRICULTURE)
    for i in range(1, n + 1):
        m = comp == i
        base = np.array([[205, 185, 85], [150, 175, 70], [185, 160, 95], [120, 150, 60]][rng.integers(4)], np.float32)
        base += rng.normal(0, 8, 3)
        theta, period = rng.uniform(0, np.pi), rng.uniform(3.5, 7)
        rows = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 6.3))
        img[m] = base + rows[m, None] * rng.uniform(18, 30) + fine[m] * 5

    canopy = _smooth_noise(rng, (size, size), 1.2) + 0.6 * _smooth_noise(rng, (size, size), 3)
    base = np.array([40, 90, 40], np.float32) + rng.normal(0, 6, 3)
    m = labels == FOREST
    img[m] = base + canopy[m, None] * np.array([12, 22, 10]) + fine[m] * 4

    m = labels == WATER
    base = np.array([[30, 75, 140], [25, 55, 90], [45, 95, 120]][rng.integers(3)], np.float32) + rng.normal(0, 5, 3)
    img[m] = base + _smooth_noise(rng, (size, size), size / 8)[m, None] * 6 + fine[m] * 2

    m = labels == ROAD
    img[m] = rng.uniform(115, 150) + fine[m] * 6 + np.array([0, 0, 4])

    comp, n = ndimage.label(labels == BUILDING)
    for i in range(1, n + 1):
        m = comp == i
        roof = np.array([[185, 70, 55], [165, 165, 170], [215, 215, 210], [135, 85, 65]][rng.integers(4)], np.float32)
        ys, xs = np.nonzero(m)
        # A ridge along the longer side: one half lit, the other shaded.
        lit = (ys < ys.mean()) if (np.ptp(xs) >= np.ptp(ys)) else (xs < xs.mean())
        img[ys, xs] = roof + np.where(lit, 18, -18)[:, None] + fine[ys, xs] * 3

    mottle = _smooth_noise(rng, (size, size), 4) + 0.5 * _smooth_noise(rng, (size, size), 1)
    base = np.array([175, 145, 105], np.float32) + rng.normal(0, 8, 3)
    m = labels == BARE
    img[m] = base + mottle[m, None] * 14 + fine[m] * 9

    img *= rng.uniform(0.88, 1.12)  # scene-wide illumination
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def generate_scene(seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``(image uint8 (size, size, 3), mask uint8 (size, size))``, same seed -> same scene."""
    if size < 32:
        raise ValueError(f"synthetic scenes need size >= 32, got {size}")
    rng = np.random.default_rng(seed)
    labels = _layout(rng, size)
    return _paint(rng, labels), labels


def ensure_synthetic_dataset(root: str | os.PathLike = "data/synthetic", n_images: int = 64, size: int = 128,
                             seed: int = 0) -> Path:
    """Write (once) a generic-layout dataset: ``images/*.png``, ``masks/*.png`` (class indices).

    Idempotent: a folder already holding the same parameters is reused as is. The folder
    is built beside ``root`` and renamed into place, so a crash or a concurrent call never
    leaves a half-written dataset. Masks are palette PNGs: pixel values are the class
    indices, viewers show the class colours.
    """
    from landseg.data.io import write_png  # late import keeps this module light

    root = Path(root)
    params = {"generator": GENERATOR, "version": GENERATOR_VERSION, "n_images": int(n_images),
              "size": int(size), "seed": int(seed), "classmap": "synthetic"}
    if _matches(root, params):
        return root
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        palette = get_classmap("synthetic").palette
        for i in range(n_images):
            image, mask = generate_scene(seed * 1_000_003 + i, size)
            write_png(tmp / "images" / f"scene_{i:04d}.png", image)
            write_png(tmp / "masks" / f"scene_{i:04d}.png", mask, palette=palette)
        (tmp / "synthetic.json").write_text(json.dumps(params, indent=2) + "\n")
        if root.exists():
            if _matches(root, params):  # a concurrent call finished first
                return root
            old = root.with_name(f".{root.name}.old.{os.getpid()}")
            os.rename(root, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, root)
        except OSError:
            if not _matches(root, params):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _check_replaceable(root: Path) -> None:
    """A folder is replaced by a new synthetic dataset only when it is empty or one this generator wrote
    (``synthetic.json``): a user's dataset given as ``data.data_dir`` must never be deleted."""
    from landseg.output_folders import OutputConflict

    if not root.exists():
        return
    if not root.is_dir():
        raise OutputConflict(root, "exists and is not a folder; the synthetic dataset needs a folder of its own")
    try:
        written = json.loads((root / "synthetic.json").read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        written = False
    if not written and any(root.iterdir()):
        raise OutputConflict(root, "is not a synthetic dataset written by landseg (no synthetic.json) and is not "
                             "empty; landseg never replaces it: give the synthetic data a folder of its own "
                             "(data.data_dir=...), or use this dataset's own name and layout")


def _matches(root: Path, params: dict) -> bool:
    try:
        stored = json.loads((root / "synthetic.json").read_text())
    except (OSError, ValueError):
        return False
    if stored != params:
        return False
    n = params["n_images"]
    return all(len([p for p in (root / d).glob("*.png")]) == n for d in ("images", "masks"))
