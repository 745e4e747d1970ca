"""Georeferenced rasters: GeoTIFF reading (bands, normalisation, nodata), windowed prediction of
scenes larger than memory, GIS-ready outputs (class / confidence COGs, vector polygons).

Submodules: :mod:`~landseg.geo.raster` (reading, band statistics), :mod:`~landseg.geo.training`
(``data.bands`` / ``data.normalisation`` of a run), :mod:`~landseg.geo.write` (COG outputs),
:mod:`~landseg.geo.windowed` (streaming prediction), :mod:`~landseg.geo.predict` (the ``predict``
command's raster path), :mod:`~landseg.geo.vector` (polygons).
"""

from landseg.geo.raster import (Normalisation, band_statistics, is_georeferenced, open_raster, raster_info,
                                read_class_raster, read_raster, use_rasterio)

__all__ = ["Normalisation", "band_statistics", "is_georeferenced", "open_raster", "raster_info",
           "read_class_raster", "read_raster", "use_rasterio"]
