"""Reading georeferenced rasters (GeoTIFF and anything GDAL reads) for landseg.

Satellite scenes come with a coordinate system, 1 to 13 bands of 8-bit, 16-bit or float
data and nodata areas. landseg's models and pipeline work on ``uint8 (H, W, C)`` images
scaled to [0, 1] (``landseg.data.preprocess.prepare_image``), so a raster is brought
into that form here, the same way for training, evaluation and prediction:

1. **band selection** (``bands``: 1-based band numbers as GDAL counts them, e.g.
   ``[4, 3, 2, 8]``; ``None`` = all bands in file order);
2. **per-band normalisation** (:class:`Normalisation`): each band's value range
   ``[lo, hi]`` (by default its 1st..99th percentile over the training rasters, computed
   by ``python -m landseg.data check`` and saved in the run) is stretched linearly onto
   0..255 and rounded, so 16-bit and float data reach the model through one uint8 image.
   8-bit data without statistics is passed through unchanged (it *is* 0..255 already);
3. **nodata** (the file's nodata value, per-band or dataset mask, or alpha): a pixel is
   invalid when every selected band is nodata there (GDAL's dataset-mask rule: one dark
   band of 0 in a valid pixel is data), or when any float band is NaN/inf. Training and evaluation label invalid
   pixels "no label" (``ignore_index``), so they count in neither loss nor metrics;
   predictions leave them nodata.

The uint8 quantisation keeps 256 levels of each band's *stretched* range: for 12/16-bit
imagery this drops detail inside the range (a documented trade-off: it lets every later
stage, including histogram matching, stay exactly as for 8-bit pictures).

Everything here reads windows, so a scene need not fit in memory; errors are
:class:`landseg.data.errors.DataError` naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from landseg.data.errors import DataError
from landseg.data.formats import GDAL_EXTENSIONS

DEFAULT_PERCENTILES = (1.0, 99.0)
STATS_SAMPLE_PIXELS = 1_000_000  # pixels read per file (decimated) when computing band statistics


def _rasterio():
    try:
        import rasterio
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ImportError("reading GeoTIFFs needs rasterio (pip install rasterio)") from e
    return rasterio


# ---------------------------------------------------------------------- normalisation
@dataclass(frozen=True)
class Normalisation:
    """Band selection and per-band linear stretch ``[lo, hi] -> [0, 255]`` (rounded, clipped).

    ``bands``: 1-based band numbers, or None for all. ``lo``/``hi``: one value per selected
    band, or None for "no stretch" (only valid for data already in 0..255).
    """

    bands: tuple[int, ...] | None = None
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES

    def __post_init__(self):
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
            if not self.bands or min(self.bands) < 1:
                raise ValueError(f"bands are 1-based band numbers, got {list(self.bands)}")
        for name in ("lo", "hi"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(float(x) for x in v))
        if (self.lo is None) != (self.hi is None):
            raise ValueError("normalisation needs both lo and hi (or neither)")
        if self.lo is not None:
            if len(self.lo) != len(self.hi):
                raise ValueError(f"normalisation has {len(self.lo)} lo but {len(self.hi)} hi values")
            if self.bands is not None and len(self.lo) != len(self.bands):
                raise ValueError(f"normalisation has {len(self.lo)} band ranges for {len(self.bands)} selected bands")
            if any(h <= l for l, h in zip(self.lo, self.hi)):
                raise ValueError(f"every band needs hi > lo, got lo={list(self.lo)} hi={list(self.hi)}")

    @property
    def stretched(self) -> bool:
        return self.lo is not None

    def to_dict(self) -> dict:
        return {
            "bands": None if self.bands is None else list(self.bands),
            "lo": None if self.lo is None else list(self.lo),
            "hi": None if self.hi is None else list(self.hi),
            "percentiles": list(self.percentiles),
            "to_model": "uint8 = clip(round((value - lo) / (hi - lo) * 255), 0, 255) per band; model input = uint8 / 255",
        }

    @classmethod
    def from_dict(cls, d: dict | None) -> "Normalisation":
        d = d or {}
        return cls(d.get("bands"), d.get("lo"), d.get("hi"), tuple(d.get("percentiles") or DEFAULT_PERCENTILES))

    def save(self, path: str | os.PathLike) -> None:
        from landseg.io_utils import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalisation":
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except (OSError, ValueError) as e:
            raise DataError(path, f"unreadable normalisation file ({e})") from e

    def apply(self, data: np.ndarray, path: str = "<array>") -> np.ndarray:
        """Selected-band data ``(H, W, C)`` of any dtype -> uint8 ``(H, W, C)``."""
        if self.lo is None:
            return to_uint8_unstretched(data, path)
        if data.shape[-1] != len(self.lo):
            raise DataError(path, f"has {data.shape[-1]} band(s) but the normalisation has {len(self.lo)} band ranges")
        lo = np.asarray(self.lo, np.float32)
        scale = np.float32(255.0) / (np.asarray(self.hi, np.float32) - lo)
        out = (data.astype(np.float32) - lo) * scale
        np.clip(out, 0, 255, out=out)
        return np.rint(out).astype(np.uint8)


def to_uint8_unstretched(data: np.ndarray, path: str) -> np.ndarray:
    """Data without band statistics: taken as is when it is 8-bit data, else an error saying why and what to do."""
    if data.dtype == np.uint8:
        return data
    from landseg.data.formats import uint8_problem

    problem = uint8_problem(data, "raster")
    if problem is not None:
        raise DataError(path, f"{problem}; or give band statistics: run `python -m landseg.data check` (it computes "
                        "them) or set data.normalisation")
    return data.astype(np.uint8)


NO_VALID_PIXEL = ("holds no valid pixel: every pixel is nodata (or NaN/inf in float data), so there is nothing to "
                  "predict or score")


# ---------------------------------------------------------------------- opening
def use_rasterio(path: str | os.PathLike) -> bool:
    """True for files landseg reads through GDAL: GDAL-only formats, and TIFFs (any TIFF:
    rasterio reads plain ones too, and only it keeps CRS, transform and nodata)."""
    return os.fspath(path).lower().endswith(GDAL_EXTENSIONS)


def open_raster(path: str | os.PathLike):
    """``rasterio.open`` with a :class:`DataError` naming the file when it fails."""
    rasterio = _rasterio()
    path = os.fspath(path)
    from landseg.io_utils import file_problem

    problem = file_problem(path)
    if problem is not None:
        raise DataError(path, problem)
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise DataError(path, f"unreadable raster ({e})") from e


def is_georeferenced(ds) -> bool:
    """A CRS or a non-identity transform: outputs should be GeoTIFFs placed in the same spot."""
    from affine import Affine

    return ds.crs is not None or (ds.transform is not None and not ds.transform.almost_equals(Affine.identity()))


def select_bands(ds, bands: Sequence[int] | None, path: str = "") -> list[int]:
    """1-based band indexes to read (all when ``bands`` is None), checked against the file."""
    if bands is None:
        return list(range(1, ds.count + 1))
    bands = [int(b) for b in bands]
    bad = [b for b in bands if not 1 <= b <= ds.count]
    if bad:
        raise DataError(path or ds.name, f"has {ds.count} band(s); band(s) {bad} do not exist (data.bands counts from 1)")
    return bands


@dataclass
class RasterInfo:
    """What a prediction needs to write outputs in the same place as its input."""

    path: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    crs: object
    transform: object
    nodata: float | None
    georeferenced: bool
    profile: dict = field(repr=False, default_factory=dict)


def raster_info(path: str | os.PathLike) -> RasterInfo:
    with open_raster(path) as ds:
        return RasterInfo(os.fspath(path), ds.width, ds.height, ds.count, tuple(ds.dtypes), ds.crs, ds.transform,
                          ds.nodata, is_georeferenced(ds), dict(ds.profile))


# ---------------------------------------------------------------------- reading
def _window(y0: int, y1: int, x0: int, x1: int):
    from rasterio.windows import Window

    return Window(x0, y0, x1 - x0, y1 - y0)


def read_window(ds, norm: Normalisation, y0: int, y1: int, x0: int, x1: int, *, path: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Rows ``y0:y1`` and columns ``x0:x1`` as (uint8 (h, w, C), valid bool (h, w))."""
    idx = select_bands(ds, norm.bands, path)
    win = _window(y0, y1, x0, x1)
    try:
        data = ds.read(idx, window=win)
        masks = ds.read_masks(idx, window=win)
    except Exception as e:  # noqa: BLE001 - GDAL raises several types for broken files
        raise DataError(path or ds.name, f"unreadable window rows {y0}:{y1} cols {x0}:{x1} ({type(e).__name__}: {e})") from e
    valid = np.any(masks > 0, axis=0)
    data = np.moveaxis(data, 0, -1)
    if np.issubdtype(data.dtype, np.floating):
        finite = np.all(np.isfinite(data), axis=-1)
        valid &= finite
        if not finite.all():
            data = np.where(finite[..., None], data, 0)
    return np.ascontiguousarray(norm.apply(data, path or ds.name)), valid


def read_raster(path: str | os.PathLike, norm: Normalisation | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole raster as (uint8 (H, W, C), valid (H, W)); use windows for scenes larger than memory."""
    norm = norm or Normalisation()
    path = os.fspath(path)
    with open_raster(path) as ds:
        image, valid = read_window(ds, norm, 0, ds.height, 0, ds.width, path=path)
    if valid.size and not valid.any():
        raise DataError(path, NO_VALID_PIXEL)
    return image, valid


def read_class_raster(path: str | os.PathLike, ignore_value: int = 255) -> np.ndarray:
    """A single-band raster of class *values* as uint8 (H, W); nodata pixels -> ``ignore_value``.

    The values are the mask's raw values (decoded by the class map like a class-index PNG).
    """
    path = os.fspath(path)
    with open_raster(path) as ds:
        if ds.count != 1:
            raise DataError(path, f"a class mask raster must have 1 band, this one has {ds.count}")
        data = ds.read(1)
        valid = ds.read_masks(1) > 0
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data)
        data = np.where(valid, data, 0)
        if not np.all(data == np.round(data)):
            raise DataError(path, "class mask raster holds non-integer values")
    if data.size and (data[valid].min(initial=0) < 0 or data[valid].max(initial=0) > 255):
        raise DataError(path, f"class values must be in 0..255, found {data[valid].min()}..{data[valid].max()}")
    out = data.astype(np.uint8)
    out[~valid] = ignore_value
    return out


def raster_shape(path: str | os.PathLike) -> tuple[int, int, int]:
    with open_raster(path) as ds:
        return ds.height, ds.width, ds.count


# ---------------------------------------------------------------------- statistics
def band_statistics(paths: Iterable[str | os.PathLike], bands: Sequence[int] | None = None,
                    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                    sample_pixels: int = STATS_SAMPLE_PIXELS) -> Normalisation:
    """Per-band ``percentiles`` of the valid pixels of ``paths`` -> a :class:`Normalisation`.

    Large files are read decimated (nearest neighbour, about ``sample_pixels`` per file),
    so this costs a bounded amount of memory and time per file. Every file weighs by its
    sampled pixel count.
    """
    from rasterio.enums import Resampling

    samples: list[np.ndarray] = []
    count = None
    for p in paths:
        p = os.fspath(p)
        with open_raster(p) as ds:
            idx = select_bands(ds, bands, p)
            if count is not None and len(idx) != count:
                raise DataError(p, f"has {len(idx)} selected band(s), the other rasters have {count}")
            count = len(idx)
            factor = max(1.0, float(np.sqrt(ds.width * ds.height / max(sample_pixels, 1))))
            shape = (len(idx), max(1, int(ds.height / factor)), max(1, int(ds.width / factor)))
            data = ds.read(idx, out_shape=shape, resampling=Resampling.nearest)
            masks = ds.read_masks(idx, out_shape=shape, resampling=Resampling.nearest)
        valid = np.any(masks > 0, axis=0)
        pix = np.moveaxis(data, 0, -1)[valid].astype(np.float64)
        pix = pix[np.all(np.isfinite(pix), axis=1)]
        samples.append(pix)
    if count is None:
        raise ValueError("band_statistics needs at least one raster")
    allpix = np.concatenate(samples) if samples else np.zeros((0, count))
    if len(allpix) == 0:
        raise ValueError("no valid (non-nodata) pixels to compute band statistics from")
    lo = np.percentile(allpix, percentiles[0], axis=0)
    hi = np.percentile(allpix, percentiles[1], axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)  # a constant band: any positive range
    return Normalisation(None if bands is None else tuple(bands), tuple(lo.tolist()), tuple(hi.tolist()), tuple(percentiles))


def needs_statistics(paths: Iterable[str | os.PathLike]) -> bool:
    """True when any raster holds data other than uint8 (it then needs a stretch)."""
    for p in paths:
        if use_rasterio(p):
            with open_raster(p) as ds:
                if any(dt != "uint8" for dt in ds.dtypes):
                    return True
    return False


# ---------------------------------------------------------------------- the run's normalisation
def run_normalisation(run) -> Normalisation | None:
    """The band selection and ranges a training run saved (its run artifact's
    :meth:`~landseg.runs.RunArtifact.raster_normalisation_file`), or None when it trained on plain 8-bit pictures."""
    path = run.raster_normalisation_file() if run is not None else None
    return Normalisation.load(path) if path is not None else None


# ---------------------------------------------------------------------- masks with nodata
def mask_nodata(path: str | os.PathLike) -> np.ndarray | None:
    """Where a single-band mask raster is nodata (bool (H, W)), or None when it declares none."""
    from rasterio.enums import MaskFlags

    with open_raster(path) as ds:
        if ds.count != 1:
            return None
        if all(f == MaskFlags.all_valid for f in ds.mask_flag_enums[0]) and ds.dtypes[0][0] != "f":
            return None
        invalid = ds.read_masks(1) == 0
        if ds.dtypes[0][0] == "f":
            invalid |= ~np.isfinite(ds.read(1))
    return invalid


def read_mask_with_nodata(path: str | os.PathLike, classmap, decode, ignore_index: int) -> np.ndarray | None:
    """A single-band mask raster that declares nodata: its class values decoded by ``decode(raw)``
    (the class map's reader), nodata pixels -> ``ignore_index``. None when the file has no nodata,
    so callers read it as usual."""
    path = os.fspath(path)
    invalid = mask_nodata(path)
    if invalid is None:
        return None
    with open_raster(path) as ds:
        raw = ds.read(1)
    if invalid.all():
        return np.full(raw.shape, ignore_index, np.uint8)
    fill = raw[~invalid][0]  # any valid value: decoded, then overwritten
    raw = np.where(invalid, fill, raw)
    mask = np.array(decode(raw), dtype=np.uint8, copy=True)
    mask[invalid] = ignore_index
    return mask
