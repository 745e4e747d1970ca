"""Map a folder of scenes with one model or an ensemble (the library behind ``landseg predict``).

Outputs, per input image ``<stem>``: ``colour/<stem>.png`` (palette of the class map),
``classes/<stem>.png`` (class indices), ``overlay/<stem>.png`` (mask blended on the image),
``confidence/<stem>.png`` (ensemble probability of the chosen class, 0-255) and, with
``save_probs``, ``probs/<stem>.npy`` (float16 HxWxC). Every file is written atomically.
An image that cannot be read (or predicted) is recorded by name and skipped; the others
are still written.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from landseg.inference.progress import Progress, progress_bar
from landseg.inference.tiling import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE, make_grid
from landseg.io_utils import atomic_path, write_json

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("colour", "classes", "overlay", "confidence")
MAX_TILE, MAX_BATCH = 8192, 1024  # beyond these one model call cannot fit in memory


@dataclass
class PredictorSettings:
    """How scenes are cut and augmented; shared by predict, pseudolabel and evaluate."""

    tile: int = DEFAULT_TILE
    overlap: float = DEFAULT_OVERLAP
    batch_size: int = DEFAULT_BATCH
    tta: str = "none"

    def __post_init__(self):
        """Bad values stop here, before any model is loaded, with the valid ranges."""
        import math

        from landseg.inference.tta import TTA_MODES

        from landseg.errors import invalid

        def bad(option, value, valid):
            raise invalid(option, value, valid)

        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or not 0 < self.tile <= MAX_TILE:
            bad("tile", self.tile, f"a whole number of pixels > 0 and <= {MAX_TILE} (rounded up to the model's "
                "size multiple)")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, float)) or not math.isfinite(self.overlap) \
                or not 0 <= self.overlap < 1:
            bad("overlap", self.overlap, "a fraction of the tile in [0, 1), e.g. 0.25")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or not 0 < self.batch_size <= MAX_BATCH:
            bad("batch_size", self.batch_size, f"a whole number of tiles > 0 and <= {MAX_BATCH}")
        if self.tta not in TTA_MODES:
            bad("tta", self.tta, ", ".join(sorted(TTA_MODES)))

    def build(self, entries):
        from landseg.inference.predictor import Predictor

        return Predictor(entries, tile=self.tile, overlap=self.overlap, batch_size=self.batch_size, tta=self.tta)


def run_over_images(
    predictor,
    paths: Iterable[str | os.PathLike],
    handle: Callable[[str, np.ndarray, object], None],
    *,
    keep_probs: bool = False,
    progress: Progress | None = None,
    desc: str = "images",
    raster_norm=None,
) -> list[tuple[str, str]]:
    """Read, predict and ``handle(path, image, result)`` each image; return ``[(path, error)]`` failures.

    A failure in one image (unreadable file, wrong band count, ...) is logged by name and does
    not stop the others. GeoTIFF / GDAL rasters are read with ``raster_norm`` (band selection and
    stretch); ``result.valid`` is then their valid-pixel mask (else None).
    """
    from landseg.data.io import read_scene

    paths = [os.fspath(p) for p in paths]
    failures: list[tuple[str, str]] = []
    with progress_bar(progress, len(paths), desc) as bar:
        for path in paths:
            try:
                image, valid = read_scene(path, raster_norm)
            except Exception as e:  # noqa: BLE001 - any unreadable file is reported and skipped
                msg = str(e) if str(e).startswith(path) else f"{path}: {e}"
                failures.append((path, msg))
                log.warning("skipped (unreadable): %s", msg)
                bar.update(1)
                continue
            try:
                grid = make_grid(image.shape[0], image.shape[1], predictor.tile, predictor.overlap, predictor.size_multiple)
                with progress_bar(progress, grid.num_tiles, os.path.basename(path), leave=False) as tbar:
                    result = predictor.predict_scene(image, keep_probs=keep_probs, progress=tbar.update)
                result.valid = valid
                handle(path, image, result)
            except Exception as e:  # noqa: BLE001
                msg = f"{path}: {type(e).__name__}: {e}"
                failures.append((path, msg))
                log.warning("failed: %s", msg)
            bar.update(1)
    return failures


# ----------------------------------------------------------------------------- outputs
def rgb_view(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 view of an image with any band count (grey repeated, extra bands dropped)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8, copy=False)


def overlay(image: np.ndarray, colour: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    rgb = rgb_view(image).astype(np.float32)
    return np.clip((1 - alpha) * rgb + alpha * colour.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> None:
    from landseg.data.io import write_png

    write_png(path, array)


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


# zlib level for photo-like outputs (overlay, confidence). Why 1: on a 2448² DeepGlobe scene the
# default 6 took 2.43 s (overlay) + 0.78 s (confidence), level 1 0.42 + 0.16 s, for files 8 % and
# 16 % larger; PNG encoding was half of `landseg.predict`'s time. Label maps keep 6 (0.2 s, 2x smaller).
FAST_PNG_LEVEL = 1


def save_png_rows(path: Path, height: int, width: int, mode: str, rows_of, band: int = 256,
                  compress_level: int = 6) -> None:
    """Write a PNG whose pixels ``rows_of(y0, y1)`` gives a band of rows at a time (uint8 arrays):
    the full-size picture exists once, inside PIL, never also as a numpy array."""
    from PIL import Image

    im = Image.new(mode, (width, height))
    for y in range(0, height, band):
        im.paste(Image.fromarray(np.ascontiguousarray(rows_of(y, min(y + band, height)))), (0, y))
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG", compress_level=compress_level)


def overlay_rows(image: np.ndarray, labels: np.ndarray, classmap, alpha: float = 0.45, rows: int = 256) -> np.ndarray:
    """:func:`overlay` of the labels' colours, computed a band of ``rows`` rows at a time: the same
    pixels, but float temporaries of a band instead of the whole scene (12 bytes/px each)."""
    out = np.empty(labels.shape + (3,), np.uint8)
    for y in range(0, labels.shape[0], rows):
        out[y : y + rows] = overlay(image[y : y + rows], classmap.encode_rgb(labels[y : y + rows]), alpha)
    return out


def confidence_u8(confidence: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Confidence in 0..1 as uint8 0..255 (rounded), a band of rows at a time."""
    out = np.empty(confidence.shape, np.uint8)
    for y in range(0, confidence.shape[0], rows):
        out[y : y + rows] = np.clip(confidence[y : y + rows] * 255 + 0.5, 0, 255)
    return out


def write_outputs(out: Path, stem: str, image: np.ndarray, result, classmap, save_probs: bool = False,
                  release: bool = False) -> list[Path]:
    """Write the colour / classes / overlay / confidence PNGs (and probs) of one scene, each built
    band by band straight into the PNG writer, so no full-size output array exists besides the
    scene, its labels and the picture being written (bounded memory on big scenes).
    ``release=True`` drops ``result.confidence`` and ``result.probs`` once written (the caller no
    longer needs them)."""
    labels = result.labels
    H, W = labels.shape
    written = []

    def put(kind: str, mode: str, rows_of, **png) -> None:
        path = out / kind / f"{stem}.png"
        save_png_rows(path, H, W, mode, rows_of, **png)
        written.append(path)

    conf = result.confidence
    put("confidence", "L", lambda a, b: confidence_u8(conf[a:b]), compress_level=FAST_PNG_LEVEL)
    if save_probs and result.probs is not None:
        p = out / "probs" / f"{stem}.npy"
        save_npy(p, result.probs.astype(np.float16))
        written.append(p)
    del conf
    if release:
        result.confidence = result.probs = None
    put("colour", "RGB", lambda a, b: classmap.encode_rgb(labels[a:b]))
    put("classes", "L", lambda a, b: labels[a:b].astype(np.uint8, copy=False))
    put("overlay", "RGB", lambda a, b: overlay(image[a:b], classmap.encode_rgb(labels[a:b])),
        compress_level=FAST_PNG_LEVEL)
    return written


def class_counts(labels: np.ndarray, num_classes: int, rows: int = 256) -> np.ndarray:
    """Pixels per class, a band of rows at a time: ``np.bincount`` of the whole scene would first copy the
    uint8 labels into an int64 array (8 bytes per pixel, 512 MB on an 8,000² scene)."""
    counts = np.zeros(num_classes, np.int64)
    for y in range(0, labels.shape[0], rows):
        counts += np.bincount(labels[y:y + rows].ravel(), minlength=num_classes)[:num_classes]
    return counts


def list_inputs(folder: str) -> list[str]:
    from landseg.data.io import list_images

    return [os.fspath(p) for p in list_images(folder)]


def unique_stems(paths: list[str]) -> dict[str, str]:
    """Output name per input; refuse two inputs that would write the same files."""
    stems: dict[str, str] = {}
    for p in paths:
        s = Path(p).stem
        if s in stems:
            raise ValueError(f"{p}: same name as {stems[s]} (outputs are named by stem); rename one of them")
        stems[s] = p
    return {p: s for s, p in stems.items()}


def summary_name(shard: tuple[int, int] | None) -> str:
    return f"predict_summary.shard-{shard[0]}-of-{shard[1]}.json" if shard is not None else "predict_summary.json"


def planned_outputs(path: str, stem: str, save_probs: bool) -> list[str]:
    """The files (relative to the output folder) that predicting ``path`` writes."""
    from landseg.data.raster import use_rasterio
    from landseg.inference.shard import SIDECAR_DIR

    if use_rasterio(path):
        files = [f"classes/{stem}.tif", f"confidence/{stem}.tif"]
    else:
        files = [f"{kind}/{stem}.png" for kind in OUTPUT_KINDS] + ([f"probs/{stem}.npy"] if save_probs else [])
    return files + [f"{SIDECAR_DIR}/{stem}.json"]


def claim_predict_outputs(output, paths, names, *, input_dir, models, save_probs: bool, shard=None, vector=None) -> None:
    """Refuse, before any model is loaded, an output layout that would write over an input, a model's run
    folder file or a file ``predict`` did not write (:mod:`landseg.output_folders`); record the rest."""
    from landseg.output_folders import claim_outputs

    planned = [f for p in paths for f in planned_outputs(p, names[p], save_probs)] + [summary_name(shard)]
    run_dirs = [os.path.dirname(os.path.abspath(m)) for m in models]
    claim_outputs(output, "predict", planned, input_files=list(paths) + list(models), input_dirs=[input_dir, *run_dirs],
                  tag=f"shard-{shard[0]}-of-{shard[1]}" if shard is not None else "")
    if vector is not None:
        vector = Path(vector)
        claim_outputs(vector.parent, "predict", [vector.name], input_files=list(paths) + list(models),
                      tag=f"vector-{vector.stem}")


def predict_folder(models, input_dir, output, *, weights=None, dataset=None, settings: PredictorSettings | None = None,
                   save_probs: bool = False, progress: Progress | None = None, vector=None, simplify: float = 0.0,
                   shard: tuple[int, int] | None = None, overwrite: bool = False) -> dict:
    """Predict every image of ``input_dir`` into ``output``; returns the summary (also written as
    ``predict_summary.json``, or ``predict_summary.shard-I-of-N.json`` with ``shard``). Raises
    ValueError / OSError when it cannot start.

    ``shard=(i, n)`` predicts only shard i's share of the inputs (:mod:`landseg.inference.shard`).
    A scene whose ``done/<stem>.json`` sidecar shows complete outputs of the same models and settings
    is skipped unless ``overwrite``.

    GeoTIFF / GDAL rasters are predicted window by window into Cloud-Optimized GeoTIFFs in the
    input's CRS (:mod:`landseg.inference.rasters`), with ``vector`` (.gpkg / .geojson) their polygons."""
    from landseg.inference.ensemble import ensemble_classmap, load_ensemble
    from landseg.inference import shard as sh

    from landseg.io_utils import check_writable_dir

    settings = settings or PredictorSettings()
    if shard is not None and vector is not None:
        from landseg.errors import OptionError

        raise OptionError("vector", "writes one file for the whole collection, so it cannot be combined with a shard")
    check_writable_dir(output)  # before any model is loaded or scene predicted
    if vector is not None:
        check_writable_dir(Path(vector).resolve().parent, "folder of the vector file")
    models = [os.fspath(m) for m in models]
    all_paths = list_inputs(input_dir)
    names = unique_stems(all_paths)  # over the whole collection: shards never write the same name
    paths = sh.select_shard(all_paths, shard, root=input_dir) if shard is not None else all_paths
    claim_predict_outputs(output, paths, names, input_dir=input_dir, models=models, save_probs=save_probs,
                          shard=shard, vector=vector)
    entries = load_ensemble(models, weights)
    classmap = ensemble_classmap(entries, dataset)
    signature = sh.run_signature(models, [e.weight for e in entries], settings, classmap=classmap.name,
                                 save_probs=save_probs)
    skipped = [] if overwrite else [p for p in paths if sh.is_complete(output, names[p], signature)]
    skip = set(skipped)
    paths = [p for p in paths if p not in skip]
    predictor = settings.build(entries)
    out = Path(output)
    t0 = time.perf_counter()
    done: list[str] = []
    nc = len(classmap.class_names)

    def handle(path, image, result):
        counts = class_counts(result.labels, nc)
        files = write_outputs(out, names[path], image, result, classmap, save_probs, release=True)
        sh.write_sidecar(out, names[path], source=path, signature=signature, outputs=files,
                         class_names=classmap.class_names, class_pixels=counts)
        done.append(path)

    from landseg.data.raster import use_rasterio

    rasters = [p for p in paths if use_rasterio(p)]
    failures = run_over_images(predictor, [p for p in paths if not use_rasterio(p)], handle, keep_probs=save_probs,
                               progress=progress)
    geo_details = {}
    if rasters:
        from landseg.inference.rasters import predict_rasters

        geo_done, geo_failed, geo_details = predict_rasters(predictor, rasters, out, names, classmap, entries,
                                                            vector=vector, simplify=simplify, progress=progress)
        done += geo_done
        failures += geo_failed
        for path in geo_done:
            d = geo_details[Path(path).name]
            area, crs = _pixel_area(path)
            sh.write_sidecar(out, names[path], source=path, signature=signature,
                             outputs=[d["classes"]] + ([d["confidence"]] if d.get("confidence") else []),
                             class_names=classmap.class_names,
                             class_pixels=[d["pixels_per_class"][n] for n in classmap.class_names],
                             pixel_area=area, crs=crs)
    elif vector is not None:
        log.warning(f"{vector}: no GeoTIFF / GDAL raster among the inputs, no polygons written")
    summary = {
        "models": [os.path.abspath(m) for m in models],
        "weights": [e.weight for e in entries],
        "classmap": classmap.name,
        "class_names": list(classmap.class_names),
        "tta": settings.tta,
        "tile": predictor.tile,
        "overlap": predictor.overlap,
        "input": os.path.abspath(input_dir),
        "output": os.path.abspath(out),
        "written": [Path(p).name for p in done],
        "skipped_complete": [Path(p).name for p in skipped],
        "failed": [{"image": path, "error": msg} for path, msg in failures],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if shard is not None:
        summary["shard"] = {"index": shard[0], "count": shard[1], "scenes": len(paths) + len(skipped),
                            "collection": len(all_paths)}
    if geo_details:
        summary["rasters"] = geo_details
    write_json(out / summary_name(shard), summary)
    return summary


def _pixel_area(path) -> tuple[float | None, str | None]:
    """Area of one pixel in CRS units² and the CRS of a georeferenced raster (None, None otherwise)."""
    try:
        import rasterio

        with rasterio.open(path) as src:
            if src.crs is None:
                return None, None
            t = src.transform
            return abs(t.a * t.e - t.b * t.d), str(src.crs)
    except Exception:  # noqa: BLE001 - the summary then gives pixels only
        return None, None
