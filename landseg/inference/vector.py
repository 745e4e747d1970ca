"""Class rasters -> polygons (GeoPackage or GeoJSON) with class name and area attributes.

``rasterio.features.shapes`` traces every 4-connected region of equal class into an
exact polygon of pixel edges (holes included) in the raster's CRS; ``simplify``
(Douglas-Peucker via shapely, topology preserved per polygon, in CRS units) then thins
the staircase edges. Nodata pixels (255) give no polygons. Attributes: ``class_id``,
``class_name``, ``area`` (CRS units squared: m^2 in a metric projected CRS) and
``pixels`` (pixel count of the region, before simplification).

The class raster is read in blocks of rows; each block's polygons are written as they are
traced. Regions that cross a block border are split there (``merge_blocks=False``), or,
by default, the whole raster is traced at once when it has at most ``max_pixels`` pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
NODATA = 255


@dataclass
class VectorSummary:
    path: str
    polygons: int
    area_per_class: dict[str, float]
    pixels_per_class: dict[str, int]


def _driver(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in DRIVERS:
        raise ValueError(f"{path}: vector output must end in one of {sorted(DRIVERS)}")
    return DRIVERS[ext]


def polygons_from_array(labels: np.ndarray, transform, *, nodata: int = NODATA, simplify: float = 0.0,
                        connectivity: int = 4):
    """Yield ``(class_id, shapely polygon, pixel count)`` for each connected region of ``labels``."""
    from rasterio import features
    from shapely.geometry import shape

    labels = np.asarray(labels, np.uint8)
    mask = labels != nodata
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    for geom, value in features.shapes(labels, mask=mask, connectivity=connectivity, transform=transform):
        poly = shape(geom)
        pixels = int(round(poly.area / pixel_area)) if pixel_area > 0 else 0
        if simplify > 0:
            poly = poly.simplify(simplify, preserve_topology=True)
            if poly.is_empty:
                continue
        yield int(value), poly, pixels


def vectorise(class_raster: str | os.PathLike, output: str | os.PathLike, *, class_names: Sequence[str] | None = None,
              simplify: float = 0.0, connectivity: int = 4, layer: str = "classes",
              block_rows: int | None = None, max_pixels: int = 400_000_000, append_layer: bool = False) -> VectorSummary:
    """Trace a class raster's regions into ``output`` (.gpkg or .geojson); see the module docstring.

    ``simplify``: tolerance in CRS units (0 = exact pixel edges). ``block_rows``: trace in
    blocks of this many rows (regions split at block borders); default: whole raster when
    it has at most ``max_pixels`` pixels, else blocks of 4096 rows. ``append_layer``: add
    ``layer`` to an existing GeoPackage instead of replacing the file.
    """
    import contextlib
    import rasterio
    import shapely
    from pyogrio.raw import write as raw_write
    from rasterio.windows import Window, transform as window_transform

    from landseg.inference.raster_outputs import read_class_names
    from landseg.io_utils import atomic_path

    class_raster, output = os.fspath(class_raster), os.fspath(output)
    driver = _driver(output)
    if class_names is None:
        class_names = read_class_names(class_raster)
    with rasterio.open(class_raster) as ds:
        if ds.count != 1:
            raise ValueError(f"{class_raster}: a class raster has 1 band, this one has {ds.count}")
        nodata = NODATA if ds.nodata is None else int(ds.nodata)
        crs_wkt = ds.crs.to_wkt() if ds.crs is not None else None
        H, W = ds.height, ds.width
        if block_rows is None:
            block_rows = H if H * W <= max_pixels else 4096
        names = list(class_names) if class_names else []

        def name_of(c: int) -> str:
            return names[c] if c < len(names) else f"class_{c}"

        area: dict[str, float] = {}
        pixels: dict[str, int] = {}
        n = 0
        target = contextlib.nullcontext(output) if append_layer and os.path.exists(output) else atomic_path(output)
        with target as tmp:
            if tmp != output and os.path.exists(tmp):
                os.remove(tmp)  # pyogrio will not overwrite an existing (empty) file
            first = True
            for y0 in range(0, H, block_rows):
                win = Window(0, y0, W, min(block_rows, H - y0))
                labels = ds.read(1, window=win)
                ids, geoms, cnames, areas, pix = [], [], [], [], []
                for cid, poly, p in polygons_from_array(labels, window_transform(win, ds.transform), nodata=nodata,
                                                        simplify=simplify, connectivity=connectivity):
                    nm = name_of(cid)
                    ids.append(cid)
                    geoms.append(poly)
                    cnames.append(nm)
                    areas.append(poly.area)
                    pix.append(p)
                    area[nm] = area.get(nm, 0.0) + poly.area
                    pixels[nm] = pixels.get(nm, 0) + p
                if not geoms and not first:
                    continue
                wkb = shapely.to_wkb(np.asarray(geoms, dtype=object)) if geoms else np.asarray([], dtype=object)
                fields = [np.asarray(ids, np.int32), np.asarray(cnames, dtype=object),
                          np.asarray(areas, np.float64), np.asarray(pix, np.int64)]
                raw_write(tmp, wkb, fields, ["class_id", "class_name", "area", "pixels"], driver=driver, layer=layer,
                          crs=crs_wkt, geometry_type="Polygon", promote_to_multi=False, append=not first)
                first = False
                n += len(geoms)
    return VectorSummary(output, n, area, pixels)
