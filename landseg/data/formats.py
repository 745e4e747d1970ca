"""Which files and pixel values landseg reads: the one list of image extensions (pictures through PIL,
rasters through GDAL) and the 8-bit rule with the words that say why other values are refused, shared by
the picture readers (:mod:`landseg.data.io`) and the raster readers (:mod:`landseg.data.raster`)."""

from __future__ import annotations

import numpy as np

PICTURE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# read with rasterio: TIFFs (only GDAL keeps CRS, transform and nodata) and GDAL-only formats
GDAL_EXTENSIONS = (".tif", ".tiff", ".vrt", ".img", ".jp2", ".nc", ".hdf", ".dat", ".bil")
TIFF_EXTENSIONS = (".tif", ".tiff")
IMAGE_EXTENSIONS = PICTURE_EXTENSIONS + GDAL_EXTENSIONS


def uint8_problem(array: np.ndarray, what: str) -> str | None:
    """Why ``array``'s values cannot be read as 8-bit data, in the user's terms (None when they can):
    NaN/inf, values outside 0..255, or fractions (float data that is not whole numbers)."""
    if array.dtype in (np.uint8, bool):
        return None
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        return f"{what} has unsupported data type {array.dtype}"
    if not array.size:
        return None
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            return (f"{what} has {bad} NaN/inf value(s) of {array.size}; landseg reads 8-bit data (0..255): mark "
                    "missing data as nodata in a GeoTIFF, or fill it")
    lo, hi = array.min(), array.max()
    if lo < 0 or hi > 255:
        return (f"{what} has {array.dtype} values in {lo:g}..{hi:g}, outside 0..255; landseg reads 8-bit data: "
                "convert it first (e.g. a percentile stretch for 12/16-bit imagery)")
    if np.issubdtype(array.dtype, np.floating) and not np.all(array == np.round(array)):
        return (f"{what} has fractional {array.dtype} values ({lo:g}..{hi:g}); landseg reads 8-bit whole numbers "
                "0..255: scale it (e.g. x 255 for reflectance in 0..1) and round")
    return None
