"""Which pixel values landseg reads: 8-bit data, and why other values are refused (one owner of the
words both the picture readers and the raster readers use)."""

from __future__ import annotations

import numpy as np


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
