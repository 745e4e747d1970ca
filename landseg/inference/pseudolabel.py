"""Pseudo-labels from a model or an ensemble (the library behind ``landseg pseudolabel``).

Writes ``DIR/masks/<stem>.png``: class indices where the ensemble's probability of its chosen
class is >= threshold, and the class map's ignore value where it is below, so partial
cross-entropy learns only from the confident pixels. ``DIR/summary.json`` records the input
folder, the threshold, the models and weights, per-class pixel counts and the fraction labelled.
Training reads such folders through ``data.pseudo_label_dirs`` (:mod:`landseg.data.pseudo_labels`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from landseg.data.pseudo_labels import MASKS, SUMMARY
from landseg.inference.predict import (PredictorSettings, Progress, class_counts, list_inputs, run_over_images,
                                      unique_stems)
from landseg.io_utils import write_json
from landseg.output_folders import claim_outputs


def pseudo_mask(labels: np.ndarray, confidence: np.ndarray, threshold: float, ignore_index: int) -> np.ndarray:
    """Class indices where ``confidence >= threshold``, ``ignore_index`` (the class map's) elsewhere."""
    mask = labels.astype(np.uint8, copy=True)
    mask[confidence < threshold] = ignore_index
    return mask


def pseudolabel(models, input_dir, output, threshold: float, *, weights=None, dataset=None,
                settings: PredictorSettings | None = None, progress: Progress | None = None) -> dict:
    """Write pseudo-labels for every image of ``input_dir``; returns the summary (also written as
    ``summary.json``; ``summary["failed"]`` lists the images that could not be labelled). Raises
    ValueError / OSError when it cannot start."""
    from landseg.data.io import write_png
    from landseg.inference.ensemble import ensemble_classmap, load_ensemble

    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    from landseg.io_utils import check_writable_dir

    settings = settings or PredictorSettings()
    check_writable_dir(output)  # before any model is loaded or image read
    check_writable_dir(Path(output) / MASKS)
    models = [os.fspath(m) for m in models]
    paths = list_inputs(input_dir)
    names = unique_stems(paths)
    claim_outputs(output, "pseudolabel", [f"{MASKS}/{names[p]}.png" for p in paths] + [SUMMARY],
                  input_files=paths + models, input_dirs=[input_dir] + [os.path.dirname(os.path.abspath(m)) for m in models])
    entries = load_ensemble(models, weights)
    classmap = ensemble_classmap(entries, dataset)
    predictor = settings.build(entries)
    out = Path(output)
    C = classmap.num_classes
    counts = np.zeros(C, np.int64)
    total = 0
    images = []
    t0 = time.perf_counter()

    def handle(path, image, result):
        nonlocal total
        mask = pseudo_mask(result.labels, result.confidence, threshold, classmap.ignore_index)
        if getattr(result, "valid", None) is not None:
            mask[~result.valid] = classmap.ignore_index  # raster nodata: no label
        rel = f"{MASKS}/{names[path]}.png"
        write_png(out / rel, mask, palette=classmap.palette)
        c = class_counts(mask, C)  # the ignore value (255) falls outside 0..C-1
        counts[:] += c
        total += mask.size
        images.append({"image": Path(path).name, "mask": rel, "pixels": int(mask.size), "labelled": int(c.sum()),
                       "fraction_labelled": round(float(c.sum()) / mask.size, 6)})

    from landseg.inference.rasters import ensemble_normalisation

    failures = run_over_images(predictor, paths, handle, progress=progress, desc="pseudo-labelling",
                               raster_norm=ensemble_normalisation(entries))
    labelled = int(counts.sum())
    summary = {
        "images_dir": os.path.abspath(input_dir),
        "output": os.path.abspath(out),
        "threshold": float(threshold),
        "ignore_index": int(classmap.ignore_index),
        "models": [os.path.abspath(m) for m in models],
        "weights": [e.weight for e in entries],
        "tta": settings.tta,
        "tile": predictor.tile,
        "overlap": predictor.overlap,
        "classmap": classmap.to_dict(),
        "class_pixel_counts": {n: int(v) for n, v in zip(classmap.class_names, counts)},
        "pixels": int(total),
        "labelled_pixels": labelled,
        "fraction_labelled": round(labelled / total, 6) if total else 0.0,
        "images": images,
        "failed": [{"image": p_, "error": m} for p_, m in failures],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / SUMMARY, summary)
    return summary
