"""Predict rasters larger than memory: windowed reading, the Predictor's blending, rows streamed to disk.

A :class:`~landseg.inference.Predictor` already blends tiles in a band of rows that it
finalises as soon as no later tile touches it (see its module docstring). Here the same
tiles, weights, TTA and ensemble go through :meth:`Predictor.predict_tiles`, but

* the scene is never loaded: a :class:`_StripSource` reads from the raster only the
  ``tile`` rows of the current tile row (all columns), so ``predict_tiles`` slices it
  exactly as it slices an in-memory scene;
* finished rows go to a callback (GeoTIFF writers in :func:`predict_raster`) instead of
  an (H, W) array.

Peak memory is therefore bounded by the tile geometry, not the scene:
``tile x W x (C_in bytes + 4 C_out + 4 + 1 + 4)`` for the input strip and the float32
blending band of (class probabilities, weights), plus one tile batch through the model;
a 16,000-pixel-wide scene at tile 512 with 6 classes needs about 250 MB for these, plus
GDAL's block cache, capped at :data:`GDAL_CACHE_MB` (measured figures in
``experiments/results/geo.md``).

Histogram matching (a model trained with ``hist_reference``) needs the whole scene's
histogram: it is accumulated in a first windowed pass, then the lookup table is applied
to each strip, which equals matching the whole scene at once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from landseg.data.raster import Normalisation, open_raster, read_window, select_bands


def _inference():
    import landseg.inference as inf  # make_grid, window_1d (landseg.inference.tiling)

    return inf


# ---------------------------------------------------------------------- sources
class ArraySource:
    """An in-memory (H, W, C) uint8 scene as a strip source (tests, PNG inputs)."""

    def __init__(self, image: np.ndarray, valid: np.ndarray | None = None):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        self.image = image
        self.valid = valid
        self.height, self.width, self.count = image.shape

    def read(self, y0: int, y1: int) -> np.ndarray:
        return self.image[y0:y1]

    def read_valid(self, y0: int, y1: int) -> np.ndarray | None:
        return None if self.valid is None else self.valid[y0:y1]

    def close(self):
        pass


class RasterSource:
    """Rows of a raster (selected bands, normalised to uint8) read window by window."""

    def __init__(self, path: str | os.PathLike, norm: Normalisation | None = None):
        self.path = os.fspath(path)
        self.norm = norm or Normalisation()
        self.ds = open_raster(self.path)
        self.height, self.width = self.ds.height, self.ds.width
        self.count = len(select_bands(self.ds, self.norm.bands, self.path))
        self._valid_cache: tuple[int, int, np.ndarray] | None = None

    def _read(self, y0: int, y1: int):
        return read_window(self.ds, self.norm, y0, y1, 0, self.width, path=self.path)

    def read(self, y0: int, y1: int) -> np.ndarray:
        data, valid = self._read(y0, y1)
        return data

    def read_valid(self, y0: int, y1: int) -> np.ndarray:
        from rasterio.windows import Window

        idx = select_bands(self.ds, self.norm.bands, self.path)
        masks = self.ds.read_masks(idx, window=Window(0, y0, self.width, y1 - y0))
        valid = np.any(masks > 0, axis=0)
        if any(np.dtype(self.ds.dtypes[i - 1]).kind == "f" for i in idx):
            data = self.ds.read(idx, window=Window(0, y0, self.width, y1 - y0))
            valid &= np.all(np.isfinite(data), axis=0)
        return valid

    def close(self):
        self.ds.close()


class _StripSource:
    """What ``Predictor.predict_tiles`` slices: the scene padded like ``pad_image``, read by strips.

    Holds the strips (``tile_h`` rows, all columns) of the tile rows of the current batch
    only (see :meth:`keep`); ``[y:y+th, x:x+tw]`` must start at one of them.
    """

    def __init__(self, source, grid, bands: int | None, lut: np.ndarray | None):
        self.source, self.grid, self.bands, self.lut = source, grid, bands, lut
        self.strips: dict[int, np.ndarray] = {}

    def keep(self, ys) -> None:
        """Load the strips starting at rows ``ys`` and drop all others."""
        ys = set(ys)
        for y in [y for y in self.strips if y not in ys]:
            del self.strips[y]
        for y in sorted(ys):
            if y not in self.strips:
                self.strips[y] = self._load(y)

    def _load(self, y: int) -> np.ndarray:
        g, src = self.grid, self.source
        y1 = min(y + g.tile_h, src.height)
        strip = src.read(y, y1)
        if strip.ndim == 2:
            strip = strip[:, :, None]
        if self.bands is not None and strip.shape[2] != self.bands:
            if strip.shape[2] < self.bands:
                raise ValueError(f"the model expects {self.bands} bands but the image has {strip.shape[2]}")
            strip = strip[:, :, : self.bands]
        if self.lut is not None:
            strip = np.stack([self.lut[c][strip[..., c]] for c in range(strip.shape[2])], axis=-1)
        # pad like pad_image on the whole scene: only when the scene is smaller than one tile
        # along an axis, and then this strip holds that whole axis.
        dh = y + g.tile_h - y1 if src.height < g.tile_h else 0
        dw = g.padded_width - src.width
        if dh > 0 or dw > 0:
            mode = "reflect" if min(src.height, src.width) > 1 else "symmetric"
            strip = np.pad(strip, ((0, max(dh, 0)), (0, max(dw, 0)), (0, 0)), mode=mode)
        return strip

    def __getitem__(self, key):
        ys, xs = key
        if ys.start not in self.strips:
            self.keep([ys.start])
        return self.strips[ys.start][0 : ys.stop - ys.start, xs]


def scene_histogram(source, bands: int | None, rows: int = 1024) -> np.ndarray:
    """Per-band uint8 histogram (C, 256) of a source, read in strips of ``rows``."""
    hist = None
    for y in range(0, source.height, rows):
        strip = source.read(y, min(y + rows, source.height))
        if strip.ndim == 2:
            strip = strip[:, :, None]
        if bands is not None:
            strip = strip[:, :, :bands]
        h = np.stack([np.bincount(strip[..., c].ravel(), minlength=256) for c in range(strip.shape[2])]).astype(np.float64)
        hist = h if hist is None else hist + h
    return hist


# ---------------------------------------------------------------------- core
@dataclass
class StreamStats:
    height: int
    width: int
    tiles: int
    seconds: float

    @property
    def mpx_per_s(self) -> float:
        return self.height * self.width / 1e6 / max(self.seconds, 1e-9)


def predict_stream(predictor, source, sink: Callable[[int, np.ndarray, np.ndarray], None], *,
                   progress: Callable[[int], None] | None = None) -> StreamStats:
    """Predict ``source`` (``.height``, ``.width``, ``.read(y0, y1)``) and hand finished rows to
    ``sink(y0, labels (n, W) uint8, confidence (n, W) float32)`` in order.

    The tiles, weights and arithmetic are those of ``predictor.predict_scene``, so the
    result is the same array (tested).
    """
    inf = _inference()
    t_start = time.perf_counter()
    H, W = source.height, source.width
    grid = inf.make_grid(H, W, predictor.tile, predictor.overlap, predictor.size_multiple)
    groups = _groups(predictor, source, grid)
    label_dtype = np.uint8 if predictor.num_classes <= 256 else np.int32

    def emit(y0: int, p: np.ndarray):
        sink(y0, np.argmax(p, axis=-1).astype(label_dtype), np.max(p, axis=-1))

    def read_strips(chunk):  # the same batches as predict_scene
        for strip, _ in groups:
            strip.keep({y for y, _ in chunk})

    predictor.blend_rows(groups, grid, H, W, emit, progress=progress, before_chunk=read_strips)
    seconds = time.perf_counter() - t_start
    predictor.timing.total_s += seconds
    return StreamStats(H, W, grid.num_tiles, seconds)


def _groups(predictor, source, grid):
    """Like ``Predictor._input_groups``: one strip source per distinct (bands, histogram reference)."""
    from landseg.data.histogram import as_reference_histogram, lookup_table_np

    hist_cache: dict[int | None, np.ndarray] = {}
    groups: list[tuple[tuple, _StripSource, list[int]]] = []
    for i, m in enumerate(predictor.models):
        bands = m.bands
        if bands is not None and source.count < bands:
            raise ValueError(f"{m.name} expects {bands} bands but the image has {source.count}")
        nb = bands if bands is not None else source.count
        for key, strip, members in groups:
            same_ref = (key[1] is None and m.hist_reference is None) or (
                key[1] is not None and m.hist_reference is not None and np.array_equal(key[1], m.hist_reference))
            if same_ref and key[0] == nb:
                members.append(i)
                break
        else:
            lut = None
            if m.hist_reference is not None:
                if nb not in hist_cache:
                    hist_cache[nb] = scene_histogram(source, nb)
                ref = as_reference_histogram(m.hist_reference)
                lut = np.asarray(lookup_table_np(hist_cache[nb], ref), np.uint8)
            groups.append(((nb, m.hist_reference), _StripSource(source, grid, nb, lut), [i]))
    return [(strip, members) for _, strip, members in groups]


def predict_array_streamed(predictor, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The streaming path on an in-memory scene (to compare with ``predict_scene``)."""
    H, W = image.shape[:2]
    labels = np.empty((H, W), np.uint8)
    conf = np.empty((H, W), np.float32)

    def sink(y0, lab, cf):
        labels[y0 : y0 + len(lab)] = lab
        conf[y0 : y0 + len(cf)] = cf

    predict_stream(predictor, ArraySource(image), sink)
    return labels, conf


# ---------------------------------------------------------------------- raster in, rasters out
# GDAL's block cache (MB) while reading and writing: its default is 5% of the machine's RAM, which
# would make the peak memory depend on the machine instead of the tile geometry.
GDAL_CACHE_MB = 128

@dataclass
class RasterPrediction:
    classes: str
    confidence: str | None
    stats: StreamStats
    counts: np.ndarray  # pixels per class (nodata excluded)
    nodata_pixels: int


def predict_raster(predictor, input_path: str | os.PathLike, classes_path: str | os.PathLike, *,
                   class_names, palette, norm: Normalisation | None = None,
                   confidence_path: str | os.PathLike | None = None, extra_tags: dict | None = None,
                   progress: Callable[[int], None] | None = None, cog: bool = True) -> RasterPrediction:
    """Predict a raster window by window into a class COG (and optionally a confidence COG).

    Outputs have the input's CRS, transform and size; pixels that are nodata in the input
    (in any selected band) are nodata (255) in the class raster and 0 in the confidence.
    """
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _predict_raster(predictor, input_path, classes_path, class_names=class_names, palette=palette,
                               norm=norm, confidence_path=confidence_path, extra_tags=extra_tags, progress=progress,
                               cog=cog)


def _predict_raster(predictor, input_path, classes_path, *, class_names, palette, norm, confidence_path, extra_tags,
                    progress, cog) -> RasterPrediction:
    from landseg.inference.raster_outputs import (CLASS_NODATA, CONFIDENCE_NODATA, confidence_to_uint8, open_class_output,
                                   open_confidence_output)

    src = RasterSource(input_path, norm)
    outputs = []
    try:
        ds = src.ds
        geo = dict(width=src.width, height=src.height, crs=ds.crs, transform=ds.transform)
        cls_out = open_class_output(classes_path, class_names=class_names, palette=palette, extra_tags=extra_tags,
                                    cog=cog, **geo)
        outputs.append(cls_out)
        conf_out = None
        if confidence_path is not None:
            conf_out = open_confidence_output(confidence_path, cog=cog, **geo)
            outputs.append(conf_out)
        counts = np.zeros(max(len(class_names), 256), np.int64)
        nodata = 0

        def sink(y0, labels, conf):
            nonlocal nodata
            valid = src.read_valid(y0, y0 + len(labels))
            labels = labels.astype(np.uint8)
            labels[~valid] = CLASS_NODATA
            counts[:] += np.bincount(labels[valid].ravel(), minlength=len(counts))[: len(counts)]
            nodata += int((~valid).sum())
            cls_out.write_rows(y0, labels)
            if conf_out is not None:
                c = confidence_to_uint8(conf)
                c[~valid] = CONFIDENCE_NODATA
                conf_out.write_rows(y0, c)

        stats = predict_stream(predictor, src, sink, progress=progress)
        for o in outputs:
            o.close()
    except BaseException:
        for o in outputs:
            o.abort()
        raise
    finally:
        src.close()
    return RasterPrediction(os.fspath(classes_path), None if confidence_path is None else os.fspath(confidence_path),
                            stats, counts[: len(class_names)], nodata)
