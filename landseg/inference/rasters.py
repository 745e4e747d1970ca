"""``landseg predict`` on GeoTIFF / GDAL inputs: window by window into Cloud-Optimized GeoTIFFs
(and optionally polygons), instead of PNGs.

Per raster ``<stem>``: ``classes/<stem>.tif`` (class indices, colour table, class names,
nodata 255 where the input is nodata), ``confidence/<stem>.tif`` (probability x 255, nodata 0),
both with the input's CRS, transform and size; with ``vector``: the polygons of the class
raster in a GeoPackage layer named ``<stem>`` (or the GeoJSON file, for one input).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from landseg.data.errors import DataError
from landseg.data.raster import NO_VALID_PIXEL, Normalisation, run_normalisation

log = logging.getLogger(__name__)


def ensemble_normalisation(entries) -> Normalisation:
    """The band selection and stretch the ensemble's runs trained with; they must agree."""
    norms = {}
    for e in entries:
        n = run_normalisation(getattr(e, "run", None))
        norms[e.name] = n
    distinct = {None if n is None else (n.bands, n.lo, n.hi) for n in norms.values()}
    if len(distinct) > 1:
        listing = "; ".join(f"{k}: {None if v is None else v.to_dict()}" for k, v in norms.items())
        raise ValueError(f"the models were trained with different raster band selections / normalisations ({listing}); "
                         "an ensemble on rasters needs the same")
    n = next(iter(norms.values()), None)
    return n if n is not None else Normalisation()


def predict_rasters(predictor, paths: Sequence[str], out: str | os.PathLike, names: dict[str, str], classmap, entries, *,
                    vector: str | os.PathLike | None = None, simplify: float = 0.0, progress=None,
                    ) -> tuple[list[str], list[tuple[str, str]], dict]:
    """Predict each raster of ``paths``; returns (done, failures [(path, message)], per-file details)."""
    from landseg.inference.vector import vectorise
    from landseg.inference.windowed import predict_raster
    from landseg.data.raster import raster_info
    from landseg.inference.progress import progress_bar
    from landseg.inference.tiling import make_grid

    out = Path(out)
    norm = ensemble_normalisation(entries)
    done: list[str] = []
    failures: list[tuple[str, str]] = []
    details: dict = {}
    if vector is not None and len(paths) > 1 and not os.fspath(vector).lower().endswith(".gpkg"):
        raise ValueError(f"{vector}: several rasters need a GeoPackage (.gpkg, one layer per raster)")
    for path in paths:
        stem = names[path]
        try:
            info = raster_info(path)
            grid = make_grid(info.height, info.width, predictor.tile, predictor.overlap, predictor.size_multiple)
            with progress_bar(progress, grid.num_tiles, os.path.basename(path), leave=False) as bar:
                res = predict_raster(predictor, path, out / "classes" / f"{stem}.tif",
                                     confidence_path=out / "confidence" / f"{stem}.tif", class_names=classmap.class_names,
                                     palette=classmap.palette, norm=norm, progress=bar.update,
                                     extra_tags={"LANDSEG_SOURCE": os.path.abspath(path)})
            if res.nodata_pixels >= info.width * info.height:  # all nodata / NaN: a failure, not an empty map
                for written in (res.classes, res.confidence):
                    if written and os.path.exists(written):
                        os.remove(written)
                raise DataError(path, NO_VALID_PIXEL)
            d = {"classes": res.classes, "confidence": res.confidence, "seconds": round(res.stats.seconds, 2),
                 "mpx_per_s": round(res.stats.mpx_per_s, 3), "pixels_per_class": dict(zip(classmap.class_names,
                                                                                         map(int, res.counts))),
                 "nodata_pixels": res.nodata_pixels, "crs": str(info.crs) if info.crs else None}
            if vector is not None:
                v = vectorise(res.classes, vector, class_names=classmap.class_names, simplify=simplify, layer=stem,
                              append_layer=len(details) > 0)
                d["vector"] = {"path": v.path, "layer": stem, "polygons": v.polygons, "area_per_class": v.area_per_class}
            details[Path(path).name] = d
            done.append(path)
        except Exception as e:  # noqa: BLE001 - one bad raster does not stop the others
            msg = str(e) if str(e).startswith(path) else f"{path}: {type(e).__name__}: {e}"
            failures.append((path, msg))
            log.warning("failed: %s", msg)
    return done, failures, details
