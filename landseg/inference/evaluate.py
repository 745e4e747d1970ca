"""Measure saved models (one, or an ensemble) on whole labelled scenes, per class and per image
(the library behind ``landseg evaluate``).

Scenes are predicted whole (any size) by the sliding window of :mod:`landseg.inference`, so
the scores are those of the deployed predictor, not of training crops. :func:`evaluate_models`
writes to the output folder: ``metrics.json`` and ``metrics.md`` (per-class IoU and F1, mIoU
with the absent-class policy named, pixel accuracy), ``confusion_matrix.png`` (row-normalized),
``per_image.csv`` and ``panels_best.png`` / ``panels_worst.png`` (image / target / prediction).

What the training run fixed is read from its run artifact (:mod:`landseg.runs.artifact`), never
re-derived: the class map, how unknown mask colours are treated (a run trained with
``data.unknown_mask_values: ignore`` scores those pixels as "no label"), and the validation
split (``split="val"`` scores exactly the run's validation files).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landseg.errors import OptionError
from landseg.inference.predict import PredictorSettings
from landseg.runs import RunFolder
from landseg.inference.progress import Progress, progress_bar
from landseg import metrics
from landseg.io_utils import write_json, write_text

log = logging.getLogger(__name__)

ABSENT_POLICY = "exclude"
ABSENT_TEXT = ("mIoU averages the classes present in the target or the prediction of the evaluated pixels; "
               "classes absent from both are excluded (not counted as 0 or 1).")
PANEL_SIDE = 512  # panels show scenes downsampled to about this many pixels


def confusion(target: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """int64 (C, C) confusion matrix, rows = target, ignoring ``ignore_index`` target pixels."""
    return np.asarray(metrics.confusion_matrix(target, pred, num_classes, ignore_index=ignore_index), np.int64)


def scores(cm: np.ndarray) -> dict:
    """Per-class IoU/F1, mIoU (absent classes excluded), pixel accuracy, via landseg.metrics."""
    m = metrics
    cm = np.asarray(cm, np.int64)
    iou = np.asarray(m.iou_per_class(cm), np.float64)
    f1 = np.asarray(m.f1_per_class(cm), np.float64)
    return {
        "miou": float(m.mean_iou(cm, absent=ABSENT_POLICY)),
        "pixel_accuracy": float(m.pixel_accuracy(cm)),
        "iou": iou,
        "f1": f1,
        "present": (cm.sum(axis=0) + cm.sum(axis=1)) > 0,
    }


def _nan_to_none(values):
    return [None if (v is None or not np.isfinite(v)) else round(float(v), 6) for v in values]


def _thumb(array: np.ndarray, side: int = PANEL_SIDE) -> np.ndarray:
    step = max(1, int(np.ceil(max(array.shape[:2]) / side)))
    return np.ascontiguousarray(array[::step, ::step])


@dataclass
class EvalPlan:
    """What is scored and how: class map, samples, mask policy, and where they came from."""

    classmap: object
    samples: list
    dataset: str
    unknown_to_ignore: bool = False
    split_info: dict = field(default_factory=dict)
    left_out: list = field(default_factory=list)  # [{"image", "reason"}]: found but not scored (no mask)


def plan_evaluation(runs, *, data_dir=None, dataset=None, layout=None, split: str = "val", val_fraction=None,
                    seed=None, unknown_mask_values: str | None = None) -> EvalPlan:
    """Samples and settings for scoring models whose run artifacts are ``runs`` (None where a model
    has none). The first model's run decides; every member of an ensemble must share its
    validation files. Raises ValueError when something needed is missing."""
    from landseg.config import default_config
    from landseg.data.layouts import discover, resolve_classmap, resolve_dataset, split_samples

    if split not in ("val", "all"):
        raise ValueError(f"split must be 'val' or 'all', got {split!r}")
    run = runs[0] if runs else None
    run_cfg = (run.config() if run is not None else None) or {}
    run_data = run_cfg.get("data", {})
    dataset = dataset or run_data.get("name")
    if dataset is None:
        raise OptionError("dataset", f"none given, and the model has no run artifact ({RunFolder.INFO} + "
                          f"{RunFolder.CONFIG}) to take it from")
    classmap_name, layout = resolve_dataset(dataset, layout=layout or (run_data.get("layout") if run_data.get("name") == dataset else None))
    classmap = run.classmap if run is not None else resolve_classmap(classmap_name)
    if unknown_mask_values is None:
        unknown_mask_values = run.unknown_mask_values if run is not None else "error"
    if unknown_mask_values not in ("error", "ignore"):
        raise ValueError(f"unknown_mask_values must be 'error' or 'ignore', got {unknown_mask_values!r}")
    split_info: dict = {"split": split, "unknown_mask_values": unknown_mask_values}
    data_dir = data_dir or run_data.get("data_dir")

    samples, left_out = None, []
    if split == "val" and run is not None and val_fraction is None and seed is None:
        stored = run.split_samples("val")
        if stored is not None and all(os.path.isfile(s.image) and os.path.isfile(s.mask) for s in stored):
            samples = stored
            split_info.update(val_fraction=run.split["val_fraction"], seed=run.split["seed"],
                              by_group=run.split["by_group"], from_run="file list")
            for other in runs[1:]:
                theirs = other.split_samples("val") if other is not None else None
                if theirs is not None and [s.image for s in theirs] != [s.image for s in samples]:
                    raise ValueError(f"{other.folder}: its validation split differs from {run.folder}'s; "
                                     "an ensemble score would mix seen images")
    if samples is None:
        if data_dir is None:
            raise OptionError("data_dir", "none given, and the model's run records none")
        files = discover(data_dir, layout)
        samples = list(files.labelled)
        if split == "all":
            left_out = [{"image": s.image, "reason": "no mask"} for s in files.unlabelled]
        if not samples:
            raise ValueError(f"{data_dir}: no labelled samples found (layout {layout!r})")
        if split == "val":
            params = (run.split if run is not None and run.split else None) or {
                "val_fraction": run_data.get("val_fraction"), "seed": run_data.get("split_seed"),
                "by_group": run_data.get("split_by_group")}
            defaults = default_config()["data"]
            vf = val_fraction if val_fraction is not None else params.get("val_fraction")
            sd = seed if seed is not None else params.get("seed")
            vf = defaults["val_fraction"] if vf is None else vf
            sd = defaults["split_seed"] if sd is None else sd
            by_group = bool(params.get("by_group") or False)
            groups = params.get("val_groups") if val_fraction is None and seed is None else None
            _, samples = split_samples(samples, val_fraction=vf, seed=sd, by_group=by_group, val_groups=groups)
            split_info.update(val_fraction=vf, seed=sd, by_group=by_group, val_groups=groups or [],
                              from_run="parameters" if run is not None else False)
    if not samples:
        raise OptionError("split", "holds no images; score them all ('all')", split)
    return EvalPlan(classmap, samples, dataset, unknown_mask_values == "ignore", split_info, left_out)


def evaluate(predictor, samples, classmap, *, unknown_to_ignore: bool = False, progress: Progress | None = None,
             keep_thumbs: bool = True, raster_norm=None):
    """Predict each sample whole; return (total confusion, per-image rows, thumbnails, failures).

    ``unknown_to_ignore``: mask colours the class map lacks count as "no label" (as in a run
    trained with ``data.unknown_mask_values: ignore``) instead of failing the image.
    GeoTIFF / GDAL images are read with ``raster_norm``; their nodata pixels are not scored."""
    from landseg.data.io import read_mask, read_scene
    from landseg.inference.tiling import make_grid

    C = classmap.num_classes
    total = np.zeros((C, C), np.int64)
    rows, thumbs, failures = [], {}, []
    names = _unique_names([s.image for s in samples])
    with progress_bar(progress, len(samples), "scenes") as bar:
        for s in samples:
            try:
                image, valid = read_scene(s.image, raster_norm)
                target = read_mask(s.mask, classmap, unknown_to_ignore=unknown_to_ignore, decoded=s.decoded)
                if target.shape != image.shape[:2]:
                    raise ValueError(f"{s.mask}: mask is {target.shape[1]}x{target.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
                if valid is not None:
                    target = np.where(valid, target, classmap.ignore_index).astype(target.dtype)
                grid = make_grid(image.shape[0], image.shape[1], predictor.tile, predictor.overlap, predictor.size_multiple)
                with progress_bar(progress, grid.num_tiles, Path(s.image).name, leave=False) as tbar:
                    res = predictor.predict_scene(image, progress=tbar.update)
            except Exception as e:  # noqa: BLE001 - report and go on with the others
                failures.append({"image": s.image, "error": f"{type(e).__name__}: {e}"})
                log.warning("failed: %s: %s", s.image, e)
                bar.update(1)
                continue
            bar.update(1)
            cm = confusion(target, res.labels, C, classmap.ignore_index)
            total += cm
            sc = scores(cm)
            labelled = int(cm.sum())
            rows.append({
                "image": names[s.image],
                "height": image.shape[0],
                "width": image.shape[1],
                "labelled_pixels": labelled,
                "pixel_accuracy": sc["pixel_accuracy"] if labelled else float("nan"),
                "miou": sc["miou"] if labelled else float("nan"),
                **{f"iou_{n}": v for n, v in zip(classmap.class_names, sc["iou"])},
            })
            if keep_thumbs:
                thumbs[names[s.image]] = (_thumb(image[:, :, :3]), _thumb(target), _thumb(res.labels))
    return total, rows, thumbs, failures


def _unique_names(paths: list) -> dict:
    """Each image's path below the folder all of them share: ``Tile 3/images/image_part_001.jpg``, so
    equal file names in different tiles stay apart in the per-image table and panels."""
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        return {p: Path(p).name for p in paths}
    root = os.path.commonpath([os.path.abspath(p) for p in paths])
    return {p: os.path.relpath(os.path.abspath(p), root) for p in paths}


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.4f}"


def report(out: Path, *, model: str, dataset: str, classmap, split_info: dict, total: np.ndarray, rows: list, thumbs: dict,
           failures: list, settings: dict, seconds: float, panels: int = 3, left_out: list = ()) -> dict:
    from landseg.plots import plot_confusion_matrix, plot_panels

    sc = scores(total)
    names = list(classmap.class_names)
    per_class = {
        n: {"iou": v_i, "f1": v_f, "pixels_target": int(total[i].sum()), "pixels_predicted": int(total[:, i].sum()), "present": bool(sc["present"][i])}
        for i, (n, v_i, v_f) in enumerate(zip(names, _nan_to_none(sc["iou"]), _nan_to_none(sc["f1"])))
    }
    result = {
        "model": os.path.abspath(model),
        "dataset": dataset,
        "classmap": classmap.name,
        **split_info,
        "images": len(rows),
        "failed": failures,
        "left_out": list(left_out),
        "labelled_pixels": int(total.sum()),
        "miou": sc["miou"],
        "miou_absent_policy": ABSENT_POLICY,
        "miou_absent_policy_text": ABSENT_TEXT,
        "pixel_accuracy": sc["pixel_accuracy"],
        "per_class": per_class,
        "confusion_matrix": total.tolist(),
        "settings": settings,
        "seconds": round(seconds, 1),
    }
    write_json(out / METRICS_JSON, result)

    # per-image CSV
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(out / "per_image.csv", buf.getvalue())

    plot_confusion_matrix(total, names, out / "confusion_matrix.png", normalize=True,
                          title=f"{Path(model).name} on {dataset} ({split_info['split']}), rows normalized")
    ranked = sorted((r for r in rows if np.isfinite(r["miou"])), key=lambda r: r["miou"])
    k = min(panels, len(ranked))
    panel_files = {}
    for label, chosen in (("best", ranked[::-1][:k]), ("worst", ranked[:k])):
        if not chosen:
            continue
        imgs, tgts, preds = zip(*(thumbs[r["image"]] for r in chosen))
        titles = [f"{r['image']}  mIoU {r['miou']:.3f}  acc {r['pixel_accuracy']:.3f}" for r in chosen]
        panel_files[label] = plot_panels(list(imgs), list(tgts), list(preds), classmap, out / f"panels_{label}.png", titles=titles)

    lines = [
        f"# Evaluation of `{Path(model).name}` on {dataset} ({split_info['split']})",
        "",
        f"- model: `{os.path.abspath(model)}`",
        f"- images: {len(rows)} whole scenes" + (f", {len(failures)} failed" if failures else "")
        + (f", {len(left_out)} left out (no mask)" if left_out else "") + f", {int(total.sum()):,} labelled pixels",
        f"- split: {split_info}",
        f"- inference: {settings}",
        f"- **mIoU: {_fmt(sc['miou'])}** (absent-class policy: `{ABSENT_POLICY}`: {ABSENT_TEXT})",
        f"- **pixel accuracy: {_fmt(sc['pixel_accuracy'])}**",
        "",
        "| class | IoU | F1 | target px | predicted px |",
        "|---|---|---|---|---|",
    ]
    for n, d in per_class.items():
        lines.append(f"| {n} | {_fmt(d['iou'])} | {_fmt(d['f1'])} | {d['pixels_target']:,} | {d['pixels_predicted']:,} |")
    lines += ["", "Classes with no target and no predicted pixel show n/a and are left out of mIoU.", "",
              "## Per image", "", "| image | size | mIoU | pixel accuracy |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["miou"] if np.isfinite(r["miou"]) else 1):
        lines.append(f"| {r['image']} | {r['width']}x{r['height']} | {_fmt(r['miou'])} | {_fmt(r['pixel_accuracy'])} |")
    lines += ["", "Files: `metrics.json`, `per_image.csv`, `confusion_matrix.png`"
              + "".join(f", `panels_{k}.png`" for k in panel_files), ""]
    if failures:
        lines += ["## Failed", ""] + [f"- {f['image']}: {f['error']}" for f in failures] + [""]
    if left_out:
        lines += ["## Left out", ""] + [f"- {f['image']}: {f['reason']}" for f in left_out] + [""]
    write_text(out / "metrics.md", "\n".join(lines))
    return result


METRICS_JSON = "metrics.json"
REPORT_FILES = (METRICS_JSON, "metrics.md", "per_image.csv", "confusion_matrix.png", "panels_best.png",
                "panels_worst.png")


def claim_evaluate_outputs(out: Path, samples, models) -> None:
    """Refuse an output folder where the report would write over the scored data, a run folder's own
    files or files ``evaluate`` did not write (:mod:`landseg.output_folders`)."""
    from landseg.output_folders import claim_outputs

    inputs = [p for s in samples for p in (s.image, s.mask) if p]
    folders = {os.path.dirname(os.path.abspath(p)) for p in inputs} | {os.path.dirname(os.path.abspath(m)) for m in models}
    claim_outputs(out, "evaluate", REPORT_FILES, input_files=inputs + list(models), input_dirs=sorted(folders))


def evaluate_models(models, *, weights=None, data_dir=None, dataset=None, layout=None, split: str = "val",
                    val_fraction=None, seed=None, unknown_mask_values: str | None = None, output=None,
                    settings: PredictorSettings | None = None, panels: int = 3, progress: Progress | None = None) -> dict:
    """Score one model or a weighted ensemble on whole scenes and write the report; returns the
    result (``metrics.json``; ``result["failed"]`` lists images that could not be scored)."""
    from landseg.inference.ensemble import load_ensemble

    settings = settings or PredictorSettings()
    models = [os.fspath(m) for m in models]
    entries = load_ensemble(models, weights)
    plan = plan_evaluation([e.run for e in entries], data_dir=data_dir, dataset=dataset, layout=layout, split=split,
                           val_fraction=val_fraction, seed=seed, unknown_mask_values=unknown_mask_values)
    if plan.classmap.num_classes != entries[0].num_classes:
        raise ValueError(f"{models[0]} predicts {entries[0].num_classes} classes but {plan.classmap.name!r} "
                         f"has {plan.classmap.num_classes}")
    out = Path(output or RunFolder.of_model(Path(models[0]).resolve()).eval_dir(plan.dataset, split))
    from landseg.io_utils import check_writable_dir

    check_writable_dir(out)  # before any scene is scored
    claim_evaluate_outputs(out, plan.samples, models)
    predictor = settings.build(entries)
    t0 = time.perf_counter()
    from landseg.inference.rasters import ensemble_normalisation

    total, rows, thumbs, failures = evaluate(predictor, plan.samples, plan.classmap,
                                             unknown_to_ignore=plan.unknown_to_ignore, progress=progress,
                                             raster_norm=ensemble_normalisation(entries))
    run_settings = {"tile": predictor.tile, "overlap": predictor.overlap, "tta": settings.tta, "window": predictor.window}
    if len(models) > 1:
        run_settings.update(ensemble=[os.path.abspath(m) for m in models], weights=[e.weight for e in entries])
    result = report(out, model=models[0], dataset=plan.dataset, classmap=plan.classmap, split_info=plan.split_info,
                    total=total, rows=rows, thumbs=thumbs, failures=failures, settings=run_settings,
                    seconds=time.perf_counter() - t0, panels=panels, left_out=plan.left_out)
    result["output"] = str(out)
    return result
