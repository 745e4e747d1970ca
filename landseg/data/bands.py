"""The raster settings of a training run: band selection (``data.bands``) and per-band
normalisation (``data.normalisation``), resolved once from the config and the training files.

``data.bands``: a band count (plain pictures: extra bands such as alpha are dropped), or a list
of 1-based band numbers to read from GeoTIFF / GDAL rasters, e.g. ``[4, 3, 2, 8]``.
``data.normalisation``: ``auto`` (rasters holding anything but uint8 get each band's 1st..99th
percentile over the training rasters, :func:`landseg.data.raster.band_statistics`), ``none``
(8-bit data used as is), or a ``.json`` written by ``landseg data check --band-stats FILE``.
The result is saved in the run folder (:attr:`landseg.runs.RunFolder.raster_normalisation`), which
evaluation, prediction, pseudo-labelling and export read back (:func:`landseg.data.raster.run_normalisation`).
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

from landseg.config_schema import DataSection
from landseg.data.raster import Normalisation, band_statistics, needs_statistics, use_rasterio

NORMALISATION_MODES = ("auto", "none")


def band_count(bands) -> int:
    """``data.bands`` -> the number of bands the model sees."""
    return len(bands) if isinstance(bands, (list, tuple)) else int(bands)


def band_selection(bands) -> tuple[int, ...] | None:
    return tuple(int(b) for b in bands) if isinstance(bands, (list, tuple)) else None


def resolve_normalisation(data: DataSection, train_samples: Sequence) -> Normalisation | None:
    """The run's :class:`Normalisation`, or None when no image is a GDAL raster and no bands are selected."""
    images = tuple(os.path.abspath(os.fspath(s.image)) for s in train_samples)
    return _resolve(images, band_selection(data.bands), str(data.normalisation))


@functools.lru_cache(maxsize=8)
def _resolve(images: tuple[str, ...], bands: tuple[int, ...] | None, mode: str) -> Normalisation | None:
    rasters = [p for p in images if use_rasterio(p)]
    if mode.endswith(".json"):
        norm = Normalisation.load(mode)
        if bands is not None and norm.bands is not None and tuple(norm.bands) != bands:
            raise ValueError(f"{mode}: its bands {list(norm.bands)} differ from data.bands {list(bands)}")
        return norm if norm.bands is not None or bands is None else Normalisation(bands, norm.lo, norm.hi, norm.percentiles)
    if not rasters and bands is None:
        return None
    if mode == "auto" and rasters and needs_statistics(rasters):
        return band_statistics(rasters, bands)
    return Normalisation(bands)
