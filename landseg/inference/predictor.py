"""Whole-scene prediction: sliding window, test-time augmentation and model ensembles.

Scenes are larger than anything a model sees in training, so they are cut into
overlapping tiles that go through the models in batches. Each tile's probabilities are
weighted by a smooth window before they are summed, so tile borders (where a
convolutional network sees zero padding instead of context) never show as seams:

* along a side that has a neighbouring tile, the weight rises as sin^2 from exactly 0
  (for the outer ``margin`` of the overlap) to 1; opposite ramps of two neighbours sum
  to 1, so the blend is a partition of unity and no floor is needed;
* along a side on the scene border the weight stays 1 (no neighbour can do better).

Memory is bounded by the tile batch and one band of tile rows, not by the scene: tiles
stream in row-major order and each band of rows is finalised (probabilities -> argmax
and confidence) as soon as no later tile touches it. The full probability map is kept
only when asked for (``keep_probs=True``).

Test-time augmentation uses the dihedral group D4 (flips and 90-degree rotations); each
prediction is mapped back by the exact inverse before averaging. An ensemble averages
the models' probabilities (optionally weighted); models must agree on the class count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from landseg.inference.tiling import (DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE, WINDOWS,
                                      ReflectPadded, TileGrid, make_grid, window_1d)
from landseg.inference.tta import get_tta

# ----------------------------------------------------------------------------- models
@dataclass
class ModelEntry:
    """One ensemble member and what it needs around it."""

    model: object  # keras.Model
    weight: float = 1.0
    name: str = "model"
    hist_reference: np.ndarray | None = None
    size_multiple: int | None = None  # None: the model's own (landseg.models.common.size_multiple_of)
    logits: bool = False
    run: object | None = None  # landseg.runs.RunArtifact of the model's training run, if any

    def __post_init__(self):
        if self.size_multiple is None:
            from landseg.models.common import size_multiple_of

            self.size_multiple = size_multiple_of(self.model)

    @property
    def num_classes(self) -> int:
        return int(self.model.output_shape[-1])

    @property
    def bands(self) -> int | None:
        shape = self.model.input_shape
        if isinstance(shape, list):
            shape = shape[0]
        return None if shape[-1] is None else int(shape[-1])


@dataclass
class SceneResult:
    labels: np.ndarray  # uint8 (H, W) argmax class
    confidence: np.ndarray  # float32 (H, W) ensemble probability of the argmax class
    probs: np.ndarray | None = None  # float32 (H, W, C) when asked for
    num_tiles: int = 0


@dataclass
class Timing:
    """Where the time of :meth:`Predictor.predict_scene` went (for benchmarks)."""

    model_s: float = 0.0
    total_s: float = 0.0
    tiles: int = 0
    model_calls: int = 0


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


class Predictor:
    """Sliding-window prediction for one model or a weighted ensemble, with optional TTA."""

    def __init__(
        self,
        models: Sequence[ModelEntry] | ModelEntry | object,
        *,
        tile: int = DEFAULT_TILE,
        overlap: float = DEFAULT_OVERLAP,
        batch_size: int = DEFAULT_BATCH,
        tta=None,
        window: str = "hann",
        margin: int | None = None,
        size_multiple: int | None = None,
    ):
        if isinstance(models, ModelEntry):
            models = [models]
        elif not isinstance(models, (list, tuple)):
            models = [ModelEntry(models)]
        models = [m if isinstance(m, ModelEntry) else ModelEntry(m, name=f"model{i}") for i, m in enumerate(models)]
        if not models:
            raise ValueError("no models given")
        check_same_classes(models)
        if any(m.weight < 0 for m in models) or sum(m.weight for m in models) <= 0:
            raise ValueError(f"ensemble weights must be >= 0 with a positive sum, got {[m.weight for m in models]}")
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS}")
        self.models = list(models)
        self.num_classes = models[0].num_classes
        total = float(sum(m.weight for m in models))
        self.norm_weights = [m.weight / total for m in models]
        self.transforms = get_tta(tta)
        self.tile = int(tile)
        self.overlap = float(overlap)
        self.batch_size = max(int(batch_size), 1)
        self.window = window
        self.margin = margin
        # One tile size must suit every model: the least common multiple of their multiples.
        mult = size_multiple or 1
        if size_multiple is None:
            for m in models:
                mult = mult * m.size_multiple // math.gcd(mult, m.size_multiple)
        self.size_multiple = int(mult)
        self.timing = Timing()

    # -- preprocessing ---------------------------------------------------------------
    def _input_groups(self, image: np.ndarray) -> list[tuple[np.ndarray, list[int]]]:
        """Histogram-matched uint8 scenes, one per distinct reference, with the models using each."""
        groups: list[tuple[np.ndarray | None, np.ndarray, list[int]]] = []
        for i, m in enumerate(self.models):
            img = image
            bands = m.bands
            if bands is not None and img.shape[2] != bands:
                if img.shape[2] < bands:
                    raise ValueError(f"{m.name} expects {bands} bands but the image has {img.shape[2]}")
                img = img[:, :, :bands]  # e.g. drop an alpha channel
            for ref, gimg, members in groups:
                same_ref = (ref is None and m.hist_reference is None) or (
                    ref is not None and m.hist_reference is not None and np.array_equal(ref, m.hist_reference)
                )
                if same_ref and gimg.shape == img.shape:
                    members.append(i)
                    break
            else:
                if m.hist_reference is not None:
                    img = match_to_reference(img, m.hist_reference)
                groups.append((m.hist_reference, img, [i]))
        return [(img, members) for _, img, members in groups]

    # -- core --------------------------------------------------------------------------
    def _predict_batch(self, entry: ModelEntry, batch: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = entry.model.predict_on_batch(batch)
        out = np.asarray(out, dtype=np.float32)
        self.timing.model_s += time.perf_counter() - t0
        self.timing.model_calls += 1
        if entry.logits:
            out = _softmax(out)
        return out

    def predict_tiles(self, groups, grid: TileGrid, starts: list[tuple[int, int]]) -> np.ndarray:
        """Ensemble + TTA probabilities (B, th, tw, C) for the tiles at ``starts``."""
        acc = None
        scale = 1.0 / len(self.transforms)
        for padded, members in groups:
            tiles = np.stack([padded[y : y + grid.tile_h, x : x + grid.tile_w] for y, x in starts])
            batch = prepare(tiles)
            for t in self.transforms:
                tb = t.forward(batch)
                for i in members:
                    p = t.inverse(self._predict_batch(self.models[i], tb))
                    w = self.norm_weights[i] * scale
                    if acc is None:
                        acc = p * w
                    else:
                        acc += p * w
        return acc

    def predict_scene(
        self,
        image: np.ndarray,
        *,
        keep_probs: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> SceneResult:
        """Predict an HxWxC uint8 scene of any size; see the module docstring for how."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise ValueError(f"expected an HxWxC image, got shape {image.shape}")
        t_start = time.perf_counter()
        H, W = image.shape[:2]
        grid = make_grid(H, W, self.tile, self.overlap, self.size_multiple)
        groups = [(ReflectPadded(img, grid.padded_height, grid.padded_width), members)  # no padded copy of the scene
                  for img, members in self._input_groups(image)]
        C = self.num_classes
        labels = np.empty((H, W), np.uint8 if C <= 256 else np.int32)
        conf = np.empty((H, W), np.float32)
        probs = np.empty((H, W, C), np.float32) if keep_probs else None

        def emit(y0: int, p: np.ndarray):
            labels[y0 : y0 + len(p)] = np.argmax(p, axis=-1)
            conf[y0 : y0 + len(p)] = np.max(p, axis=-1)
            if probs is not None:
                probs[y0 : y0 + len(p)] = p

        self.blend_rows(groups, grid, H, W, emit, progress=progress)
        self.timing.total_s += time.perf_counter() - t_start
        return SceneResult(labels, conf, probs, grid.num_tiles)

    def blend_rows(self, groups, grid: TileGrid, H: int, W: int, emit: Callable[[int, np.ndarray], None], *,
                   progress: Callable[[int], None] | None = None,
                   before_chunk: Callable[[list], None] | None = None) -> None:
        """Predict ``grid``'s tiles batch by batch and hand the blended probabilities of finished
        rows to ``emit(y0, p)`` (p: (n <= 64, W, C) float32), in order.

        Memory is one band of ``tile_h`` rows of the padded width, whatever the scene's height:
        the in-memory and the windowed (GeoTIFF) paths both run this loop, so they give the same
        numbers. ``before_chunk(starts)`` runs before each batch (the windowed path reads its strips).
        """
        C = self.num_classes
        th, tw = grid.tile_h, grid.tile_w
        ov_h, ov_w = th - grid.stride_h, tw - grid.stride_w
        nx, ny = len(grid.xs), len(grid.ys)
        wx = [window_1d(tw, ov_w, j > 0, j < nx - 1, self.window, self.margin) for j in range(nx)]
        wy = [window_1d(th, ov_h, i > 0, i < ny - 1, self.window, self.margin) for i in range(ny)]
        # Band of rows [band_y, band_y + th) that tiles of the current tile row touch.
        acc = np.zeros((th, grid.padded_width, C), np.float32)
        wsum = np.zeros((th, grid.padded_width), np.float32)
        band_y = 0

        def finalize(rows: int):
            """Emit the band's first ``rows`` rows and shift the band up by ``rows``."""
            nonlocal band_y
            lo, hi = band_y, min(band_y + rows, H)
            for a in range(lo, hi, 64):  # 64 rows at a time: band-sized temporaries stay small on wide scenes
                b = min(a + 64, hi)
                ws = wsum[a - band_y : b - band_y, :W]
                if not np.all(ws > 0):
                    raise AssertionError("a pixel got no tile weight (tiling bug)")
                emit(a, acc[a - band_y : b - band_y, :W] / ws[:, :, None])
            keep = th - rows
            if keep > 0:  # in non-overlapping chunks: numpy copies an overlapping source whole first
                step = max(1, min(rows, 64))
                for i in range(0, keep, step):
                    j = min(i + step, keep)
                    acc[i:j] = acc[rows + i : rows + j]
                    wsum[i:j] = wsum[rows + i : rows + j]
            acc[max(keep, 0) :] = 0
            wsum[max(keep, 0) :] = 0
            band_y += rows

        row_index = {y: i for i, y in enumerate(grid.ys)}
        col_index = {x: j for j, x in enumerate(grid.xs)}
        starts = list(grid.tiles())
        for b in range(0, len(starts), self.batch_size):
            chunk = starts[b : b + self.batch_size]
            if before_chunk is not None:
                before_chunk(chunk)
            p = self.predict_tiles(groups, grid, chunk)
            for (y, x), pt in zip(chunk, p):
                if y > band_y:
                    finalize(y - band_y)
                w = np.outer(wy[row_index[y]], wx[col_index[x]])
                acc[:, x : x + tw] += pt * w[:, :, None]
                wsum[:, x : x + tw] += w
            self.timing.tiles += len(chunk)
            if progress is not None:
                progress(len(chunk))
        finalize(th)


def check_same_classes(models: Sequence[ModelEntry]) -> None:
    """Refuse an ensemble whose members predict different numbers (or names) of classes."""
    counts = [(m.name, m.num_classes) for m in models]
    if len({c for _, c in counts}) > 1:
        listing = ", ".join(f"{n} has {c}" for n, c in counts)
        raise ValueError(f"models disagree on the number of classes ({listing}); an ensemble needs the same classes in every model")
    names = [(m.name, tuple(m.run.classmap.class_names)) for m in models if m.run is not None]
    if len({n for _, n in names}) > 1:
        listing = "; ".join(f"{n}: {list(c)}" for n, c in names)
        raise ValueError(f"models disagree on the classes ({listing}); an ensemble needs the same classes in every model")


def prepare(tiles_uint8: np.ndarray) -> np.ndarray:
    """uint8 (B, h, w, C) -> float32 model input, via the one place that defines it."""
    from landseg.data.preprocess import prepare_image

    out = np.empty(tiles_uint8.shape, np.float32)
    for i, tile in enumerate(tiles_uint8):
        out[i] = prepare_image(tile)
    return out


def match_to_reference(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Histogram-match a whole uint8 scene once (as training does per image), before tiling.

    Same numpy matching as ``prepare_image(image, reference)``; done on the whole scene so
    every tile gets the scene's mapping, then tiles are prepared without a reference.
    """
    from landseg.data.histogram import as_reference_histogram, match_histograms_np

    return np.asarray(match_histograms_np(image, as_reference_histogram(reference)), dtype=np.uint8)
