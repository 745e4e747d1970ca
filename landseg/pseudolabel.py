"""Pseudo-labels: label unlabelled scenes with the ensemble's confident predictions only.

    python -m landseg.pseudolabel --models A.keras [B.keras ...] --input UNLABELLED_DIR --output DIR --threshold 0.9
        [--weights ...] [--tta [flips|d4]] [--tile 512 --overlap 0.25]

Writes ``DIR/masks/<stem>.png``: class indices where the ensemble's probability of its
chosen class is >= threshold, and 255 (ignore) where it is below, so partial cross-entropy
learns only from the confident pixels. ``DIR/summary.json`` records the input folder, the
threshold, the models and weights, per-class pixel counts and the fraction labelled.

Training takes such folders through the config key ``data.pseudo_label_dirs``;
:func:`load_pseudo_labelled` turns one into training samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from landseg.io_utils import write_json

SUMMARY = "summary.json"
MASKS = "masks"
IGNORE = 255


def pseudo_mask(labels: np.ndarray, confidence: np.ndarray, threshold: float, ignore_index: int = IGNORE) -> np.ndarray:
    """Class indices where ``confidence >= threshold``, ``ignore_index`` elsewhere."""
    mask = labels.astype(np.uint8, copy=True)
    mask[confidence < threshold] = ignore_index
    return mask


def load_pseudo_labelled(folder: str | os.PathLike) -> list:
    """Training samples (``decoded=True``) of a folder written by ``landseg.pseudolabel``.

    Images are found through ``summary.json``'s ``images_dir`` (an absolute path) and the image
    file names it lists; an image or mask that has gone missing is an error naming it.
    """
    from landseg.data.errors import DataError
    from landseg.data.layouts import Sample

    folder = Path(folder)
    summary_path = folder / SUMMARY
    if not summary_path.is_file():
        raise DataError(str(summary_path), "no pseudo-label summary here; is this a folder written by landseg.pseudolabel?")
    with open(summary_path) as f:
        summary = json.load(f)
    images_dir = Path(summary["images_dir"])
    samples = []
    for entry in summary["images"]:
        image = images_dir / entry["image"]
        mask = folder / entry["mask"]
        for p, what in ((image, "image"), (mask, "pseudo-label mask")):
            if not p.is_file():
                raise DataError(str(p), f"{what} listed in {summary_path} is missing")
        samples.append(Sample(str(image), str(mask), group=f"pseudo:{image.stem}", decoded=True))
    return samples


def main(argv: list[str] | None = None) -> int:
    from landseg.predict import add_ensemble_args, add_predictor_args

    p = argparse.ArgumentParser(prog="python -m landseg.pseudolabel", description=__doc__.split("\n")[0])
    add_ensemble_args(p)
    p.add_argument("--input", required=True, help="folder of unlabelled images")
    p.add_argument("--output", required=True, help="output folder (masks/ and summary.json)")
    p.add_argument("--threshold", type=float, required=True, help="minimum ensemble confidence for a pixel to be labelled (0-1)")
    add_predictor_args(p)
    args = p.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        print(f"error: --threshold must be in [0, 1], got {args.threshold}", file=sys.stderr)
        return 2
    return pseudolabel(args.models, args.input, args.output, args.threshold, weights=args.weights, dataset=args.dataset,
                       tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, tta=args.tta, progress=not args.no_progress)


def pseudolabel(models, input_dir, output, threshold: float, *, weights=None, dataset=None, tile=None, overlap=None,
                batch_size=None, tta="none", progress: bool = True) -> int:
    """Write pseudo-labels for every image of ``input_dir``; return the exit code (1 if any image failed)."""
    from landseg import inference as inf
    from landseg.predict import list_inputs, run_over_images, unique_stems

    try:
        entries = inf.load_ensemble([os.fspath(m) for m in models], weights)
        classmap = inf.ensemble_classmap(entries, dataset)
        paths = list_inputs(input_dir)
        names = unique_stems(paths)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    predictor = inf.Predictor(entries, tile=tile or inf.DEFAULT_TILE, overlap=inf.DEFAULT_OVERLAP if overlap is None else overlap,
                              batch_size=batch_size or inf.DEFAULT_BATCH, tta=tta)
    out = Path(output)
    C = classmap.num_classes
    counts = np.zeros(C, np.int64)
    total = 0
    images = []
    t0 = time.perf_counter()

    def handle(path, image, result):
        nonlocal total
        from landseg.data.io import write_png

        mask = pseudo_mask(result.labels, result.confidence, threshold, classmap.ignore_index)
        rel = f"{MASKS}/{names[path]}.png"
        write_png(out / rel, mask, palette=classmap.palette)
        c = np.bincount(mask[mask != classmap.ignore_index].ravel(), minlength=C)[:C]
        counts[:] += c
        total += mask.size
        images.append({"image": Path(path).name, "mask": rel, "pixels": int(mask.size), "labelled": int(c.sum()),
                       "fraction_labelled": round(float(c.sum()) / mask.size, 6)})

    failures = run_over_images(predictor, paths, handle, progress=progress, desc="pseudo-labelling")
    labelled = int(counts.sum())
    summary = {
        "images_dir": os.path.abspath(input_dir),
        "threshold": float(threshold),
        "ignore_index": int(classmap.ignore_index),
        "models": [os.path.abspath(m) for m in models],
        "weights": [e.weight for e in entries],
        "tta": tta,
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
    print(f"pseudo-labelled {len(images)} image(s): {summary['fraction_labelled']:.1%} of pixels at confidence >= {threshold}; "
          f"{out / SUMMARY}" + (f"; {len(failures)} failed" if failures else ""), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
