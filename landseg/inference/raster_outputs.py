"""Writing GIS-ready prediction rasters: class map and confidence as Cloud-Optimized GeoTIFFs.

* the class raster is one ``uint8`` band of class indices with the input's CRS,
  transform and size, the class palette as its colour table, the class names in its
  metadata (``LANDSEG_CLASS_NAMES`` as JSON and ``CLASS_<i>=<name>``) and
  ``nodata = ignore_index`` (255) where the input was nodata;
* the confidence raster (optional) is one ``uint8`` band, the ensemble probability of
  the chosen class times 255 (``scale = 1/255`` in its metadata), nodata 0.

Rows are written as they are predicted (a tiled GeoTIFF beside the output), then GDAL's
COG driver copies that file into the final Cloud-Optimized GeoTIFF (internal tiles,
DEFLATE, overviews: nearest for classes, average for confidence) and the temporary file
is removed. The final name appears only when complete.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

CLASS_NODATA = 255
CONFIDENCE_NODATA = 0
BLOCK = 512


def _tmp_beside(path: str, tag: str) -> str:
    d, name = os.path.split(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f".{name}.{tag}.{os.getpid()}.tif")


class RasterOutput:
    """One single-band uint8 output raster written row band by row band, finished as a COG."""

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, crs, transform, nodata: int,
                 colormap: dict | None = None, tags: dict | None = None, description: str | None = None,
                 overview_resampling: str = "nearest", cog: bool = True):
        import rasterio

        self.path = os.fspath(path)
        self.cog = cog
        self.overview_resampling = overview_resampling
        self.tmp = _tmp_beside(self.path, "part")
        profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", nodata=nodata,
                       tiled=True, blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", BIGTIFF="IF_SAFER")
        if crs is not None:
            profile["crs"] = crs
        if transform is not None:
            profile["transform"] = transform
        self._ds = rasterio.open(self.tmp, "w", **profile)
        if colormap:
            self._ds.write_colormap(1, colormap)
        if tags:
            self._ds.update_tags(**tags)
        if description:
            self._ds.set_band_description(1, description)

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        from rasterio.windows import Window

        rows = np.asarray(rows, np.uint8)
        self._ds.write(rows, 1, window=Window(0, y0, rows.shape[1], rows.shape[0]))

    def close(self) -> None:
        if self._ds is None:
            return
        self._ds.close()
        self._ds = None
        if not self.cog:
            os.replace(self.tmp, self.path)
            return
        from rasterio.shutil import copy as rio_copy

        final_tmp = _tmp_beside(self.path, "cog")
        try:
            rio_copy(self.tmp, final_tmp, driver="COG", compress="DEFLATE", blocksize=BLOCK,
                     overview_resampling=self.overview_resampling.upper(), BIGTIFF="IF_SAFER")
            os.replace(final_tmp, self.path)
        finally:
            for p in (self.tmp, final_tmp):
                if os.path.exists(p):
                    os.remove(p)

    def abort(self) -> None:
        if self._ds is not None:
            self._ds.close()
            self._ds = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def class_colormap(palette: Sequence[Sequence[int]]) -> dict[int, tuple[int, int, int, int]]:
    """Class index -> RGBA for GDAL's colour table; the nodata value is transparent black."""
    cmap = {i: (int(c[0]), int(c[1]), int(c[2]), 255) for i, c in enumerate(palette)}
    cmap[CLASS_NODATA] = (0, 0, 0, 0)
    return cmap


def class_tags(class_names: Sequence[str], extra: dict | None = None) -> dict[str, str]:
    tags = {"LANDSEG_CLASS_NAMES": json.dumps(list(class_names))}
    tags.update({f"CLASS_{i}": str(n) for i, n in enumerate(class_names)})
    tags["NODATA_MEANING"] = "input nodata (no prediction)"
    for k, v in (extra or {}).items():
        tags[str(k)] = v if isinstance(v, str) else json.dumps(v)
    return tags


def open_class_output(path, *, width, height, crs, transform, class_names, palette, extra_tags=None, cog=True) -> RasterOutput:
    return RasterOutput(path, width=width, height=height, crs=crs, transform=transform, nodata=CLASS_NODATA,
                        colormap=class_colormap(palette), tags=class_tags(class_names, extra_tags),
                        description="class", overview_resampling="nearest", cog=cog)


def open_confidence_output(path, *, width, height, crs, transform, cog=True) -> RasterOutput:
    tags = {"MEANING": "probability of the predicted class x 255", "SCALE": str(1 / 255)}
    out = RasterOutput(path, width=width, height=height, crs=crs, transform=transform, nodata=CONFIDENCE_NODATA,
                       tags=tags, description="confidence", overview_resampling="average", cog=cog)
    out._ds.scales = (1 / 255,)
    return out


def confidence_to_uint8(conf: np.ndarray) -> np.ndarray:
    """Probability in [0, 1] -> 1..255 (0 is kept for nodata)."""
    return np.clip(np.rint(conf * 255.0), 1, 255).astype(np.uint8)


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """Class names stored by :func:`open_class_output`, or None."""
    import rasterio

    with rasterio.open(path) as ds:
        tags = ds.tags()
    if "LANDSEG_CLASS_NAMES" in tags:
        return list(json.loads(tags["LANDSEG_CLASS_NAMES"]))
    return None
