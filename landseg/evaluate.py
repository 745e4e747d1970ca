"""Measure a saved model on whole labelled scenes, per class and per image.

    python -m landseg.evaluate --model M.keras --dataset NAME --data-dir DIR [--split val|all] [--output DIR]
        [--tta [flips|d4]] [--tile 512 --overlap 0.25]

Scenes are predicted whole (any size) by the sliding window of :mod:`landseg.inference`, so
the scores are those of the deployed predictor, not of training crops. Writes to the output
folder: ``metrics.json`` and ``metrics.md`` (per-class IoU and F1, mIoU with the absent-class
policy named, pixel accuracy), ``confusion_matrix.png`` (row-normalized), ``per_image.csv``
and ``panels_best.png`` / ``panels_worst.png`` (image / target / prediction).

``--split val`` uses the validation split of the model's own training run (val_fraction, seed
and grouping read from the run's config.yaml) so training images are not scored as if unseen.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from landseg.io_utils import write_json, write_text

ABSENT_POLICY = "exclude"
ABSENT_TEXT = ("mIoU averages the classes present in the target or the prediction of the evaluated pixels; "
               "classes absent from both are excluded (not counted as 0 or 1).")
PANEL_SIDE = 512  # panels show scenes downsampled to about this many pixels


def _metrics():
    import landseg.metrics as m

    return m


def confusion(target: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """int64 (C, C) confusion matrix, rows = target, ignoring ``ignore_index`` target pixels."""
    return np.asarray(_metrics().confusion_matrix(target, pred, num_classes, ignore_index=ignore_index), np.int64)


def scores(cm: np.ndarray) -> dict:
    """Per-class IoU/F1, mIoU (absent classes excluded), pixel accuracy, via landseg.metrics."""
    m = _metrics()
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


def select_samples(args):
    from landseg.data.layouts import dataset_info, discover, split_samples

    classmap_name, layout = dataset_info(args.dataset) if not args.layout else (args.dataset, args.layout)
    files = discover(args.data_dir, layout)
    samples = list(files.labelled)
    if not samples:
        raise ValueError(f"{args.data_dir}: no labelled samples found (layout {layout!r})")
    split_info = {"split": args.split}
    if args.split == "val":
        val_fraction, seed, by_group = args.val_fraction, args.seed, False
        cfg = _run_config(args.model)
        if cfg is not None:
            d = cfg.get("data", {})
            val_fraction = d.get("val_fraction", val_fraction) if args.val_fraction is None else args.val_fraction
            seed = d.get("split_seed", seed) if args.seed is None else args.seed
            by_group = bool(d.get("split_by_group", False))
        val_fraction = 0.3 if val_fraction is None else val_fraction
        seed = 0 if seed is None else seed
        _, samples = split_samples(samples, val_fraction=val_fraction, seed=seed, by_group=by_group)
        split_info.update(val_fraction=val_fraction, seed=seed, by_group=by_group, from_run_config=cfg is not None)
    return classmap_name, samples, split_info


def _run_config(model_path: str) -> dict | None:
    try:
        from landseg.runs import read_model_info

        info = read_model_info(model_path)
    except ImportError:  # pragma: no cover
        return None
    if not info or not info.get("config") or not os.path.isfile(info["config"]):
        return None
    import yaml

    with open(info["config"]) as f:
        return yaml.safe_load(f)


def evaluate(predictor, samples, classmap, *, progress: bool = True, keep_thumbs: bool = True):
    """Predict each sample whole; return (total confusion, per-image rows, thumbnails, failures)."""
    from tqdm import tqdm

    from landseg.data.io import read_image, read_mask
    from landseg.inference import make_grid

    C = classmap.num_classes
    total = np.zeros((C, C), np.int64)
    rows, thumbs, failures = [], {}, []
    for s in tqdm(samples, desc="scenes", unit="img", disable=not progress, file=sys.stderr):
        try:
            image = read_image(s.image)
            target = read_mask(s.mask, classmap, decoded=s.decoded)
            if target.shape != image.shape[:2]:
                raise ValueError(f"{s.mask}: mask is {target.shape[1]}x{target.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
            grid = make_grid(image.shape[0], image.shape[1], predictor.tile, predictor.overlap, predictor.size_multiple)
            with tqdm(total=grid.num_tiles, desc=Path(s.image).name, unit="tile", leave=False, disable=not progress, file=sys.stderr) as bar:
                res = predictor.predict_scene(image, progress=bar.update)
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            failures.append({"image": s.image, "error": f"{type(e).__name__}: {e}"})
            tqdm.write(f"failed: {s.image}: {e}", file=sys.stderr)
            continue
        cm = confusion(target, res.labels, C, classmap.ignore_index)
        total += cm
        sc = scores(cm)
        labelled = int(cm.sum())
        rows.append({
            "image": Path(s.image).name,
            "height": image.shape[0],
            "width": image.shape[1],
            "labelled_pixels": labelled,
            "pixel_accuracy": sc["pixel_accuracy"] if labelled else float("nan"),
            "miou": sc["miou"] if labelled else float("nan"),
            **{f"iou_{n}": v for n, v in zip(classmap.class_names, sc["iou"])},
        })
        if keep_thumbs:
            thumbs[Path(s.image).name] = (_thumb(image[:, :, :3]), _thumb(target), _thumb(res.labels))
    return total, rows, thumbs, failures


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.4f}"


def report(out: Path, *, model: str, dataset: str, classmap, split_info: dict, total: np.ndarray, rows: list, thumbs: dict,
           failures: list, settings: dict, seconds: float, panels: int = 3) -> dict:
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
    write_json(out / "metrics.json", result)

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
        f"- images: {len(rows)} whole scenes" + (f", {len(failures)} failed" if failures else "") + f", {int(total.sum()):,} labelled pixels",
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
    write_text(out / "metrics.md", "\n".join(lines))
    return result


def main(argv: list[str] | None = None) -> int:
    from landseg.predict import add_predictor_args, build_predictor

    p = argparse.ArgumentParser(prog="python -m landseg.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="saved model (.keras); its model_info.json is read")
    p.add_argument("--dataset", required=True, help="dataset name (class map + layout), e.g. deepglobe")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--layout", default=None, help="folder layout when --dataset is a class map name, not a dataset")
    p.add_argument("--split", choices=("val", "all"), default="val")
    p.add_argument("--val-fraction", type=float, default=None, help="default: the training run's (else 0.3)")
    p.add_argument("--seed", type=int, default=None, help="split seed; default: the training run's (else 0)")
    p.add_argument("--output", default=None, help="default: <model folder>/eval_<dataset>_<split>")
    p.add_argument("--panels", type=int, default=3, help="best and worst images shown")
    add_predictor_args(p)
    args = p.parse_args(argv)

    from landseg.classmaps import get_classmap
    from landseg.inference import load_ensemble

    try:
        entries = load_ensemble([args.model])
        classmap_name, samples, split_info = select_samples(args)
        classmap = get_classmap(classmap_name)
        if classmap.num_classes != entries[0].num_classes:
            raise ValueError(f"{args.model} predicts {entries[0].num_classes} classes but {classmap.name!r} has {classmap.num_classes}")
        if not samples:
            raise ValueError("the split holds no images; use --split all")
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.output or Path(args.model).resolve().parent / f"eval_{args.dataset}_{args.split}")
    predictor = build_predictor(args, entries)
    t0 = time.perf_counter()
    total, rows, thumbs, failures = evaluate(predictor, samples, classmap, progress=not args.no_progress)
    settings = {"tile": predictor.tile, "overlap": predictor.overlap, "tta": args.tta, "window": predictor.window}
    res = report(out, model=args.model, dataset=args.dataset, classmap=classmap, split_info=split_info, total=total, rows=rows,
                 thumbs=thumbs, failures=failures, settings=settings, seconds=time.perf_counter() - t0, panels=args.panels)
    print(f"mIoU {_fmt(res['miou'])} (absent classes excluded), pixel accuracy {_fmt(res['pixel_accuracy'])} "
          f"on {len(rows)} scene(s); report in {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
