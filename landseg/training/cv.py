"""Scene-level k-fold cross-validation: a recipe judged on every scene, each scored by a model that
never saw it (the library behind ``landseg cv``).

A single train/validation split of ten scenes cannot tell a better recipe from a luckier split: the
same recipe scored 0.48 on the two DeepGlobe scenes it was tuned on and 0.29 on three others. Here the
scene groups (a Dubai tile, a DeepGlobe scene: :func:`landseg.data.layouts.scene_of`) are dealt into
K folds; fold i trains an ordinary run on the other folds' scenes and is scored by ``evaluate`` on its
own, whole scenes, so every image is validated exactly once and never trained on in its own fold.

The CV folder ``<run.output_dir>/<run name>-cv<K>/`` holds ``cv_config.yaml`` (the recipe),
``folds.json`` (the partition), one run folder per fold and seed (``seed-<s>/fold-<i>/``, each with its
evaluation in ``eval_cv/``), ``cv_summary.json`` / ``cv_summary.md`` (per fold, mean and standard
deviation, per class) and ``cv_report.html`` (:mod:`landseg.report` over the fold runs). The same command
after a crash continues: finished and scored folds are kept, an unfinished fold resumes from its last epoch.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landseg import config as cfg

log = logging.getLogger(__name__)

CV_CONFIG, FOLDS_FILE = "cv_config.yaml", "folds.json"
SUMMARY_JSON, SUMMARY_MD, REPORT = "cv_summary.json", "cv_summary.md", "cv_report.html"
EVAL_DIR = "eval_cv"


class CVError(ValueError):
    """A cross-validation folder that cannot be continued (it holds another recipe or partition)."""


@dataclass
class Fold:
    index: int
    groups: list[str]   # scene groups validated in this fold
    images: list[str]   # their images (absolute paths)


def assign_folds(groups: list[str], k: int, seed: int) -> list[list[str]]:
    """Deal the scene ``groups`` into ``k`` folds (shuffled with ``seed``; sizes differ by at most one group)."""
    from landseg.errors import OptionError

    groups = sorted(set(groups))
    if k < 2:
        raise OptionError("folds", "is too few: cross-validation needs at least 2 folds", k)
    if k > len(groups):
        raise OptionError("folds", f"is more than the dataset's {len(groups)} scene group(s) ({', '.join(groups[:10])}"
                          f"{' ...' if len(groups) > 10 else ''}); every fold needs at least one: use "
                          f"{len(groups)} or fewer", k)
    random.Random(seed).shuffle(groups)
    return [sorted(groups[i::k]) for i in range(k)]


def plan_folds(config: cfg.Config, k: int, seed: int | None = None) -> list[Fold]:
    """The folds of the config's labelled data (pseudo-label folders only ever train)."""
    from landseg.data.layouts import discover, scene_of
    from landseg.training.setup import dataset_folder

    d = config.data
    files = discover(dataset_folder(config), d.layout)
    if not files.labelled:
        raise CVError(f"{d.data_dir}: no labelled images found with layout {d.layout!r}")
    by_group: dict[str, list[str]] = {}
    for s in files.labelled:
        by_group.setdefault(scene_of(s), []).append(os.path.abspath(s.image))
    dealt = assign_folds(list(by_group), k, d.split_seed if seed is None else seed)
    return [Fold(i, g, sorted(p for x in g for p in by_group[x])) for i, g in enumerate(dealt)]


# ----------------------------------------------------------------------------- folders
def cv_name(config: cfg.Config, k: int) -> str:
    from landseg.runs.select import default_run_name

    return f"{default_run_name(config)}-cv{k}"


def fold_config(config: cfg.Config, cv_dir: Path, fold: Fold, seed: int) -> cfg.Config:
    """The recipe for one fold: the same config, validated on the fold's scene groups, trained with ``seed``."""
    c = config.to_dict()
    c["run"].update(output_dir=str(cv_dir / f"seed-{seed}"), name=f"fold-{fold.index}", seed=int(seed), resume="auto",
                    tensorboard_dir=str(Path(config.run.tensorboard_dir) / cv_dir.name / f"seed-{seed}"))
    c["data"]["val_groups"] = list(fold.groups)
    return cfg.from_dict(c)


def _check_same_recipe(cv_dir: Path, config: cfg.Config, folds: list[Fold]) -> None:
    """A CV folder is continued only by the same recipe and partition."""
    import json

    from landseg.bounded_yaml import load_file
    from landseg.runs.select import comparable_config

    saved = cv_dir / CV_CONFIG
    if saved.is_file():
        if comparable_config(load_file(saved)) != comparable_config(config):
            raise CVError(f"{cv_dir}: holds a cross-validation of another config ({saved}); give this one another "
                          "run.name, or move that folder away")
        with open(cv_dir / FOLDS_FILE) as f:
            if json.load(f)["groups"] != [fo.groups for fo in folds]:
                raise CVError(f"{cv_dir}: its folds ({FOLDS_FILE}) differ from this dataset's; give this CV another "
                              "run.name, or move that folder away")


def prepare_cv_dir(config: cfg.Config, folds: list[Fold], seeds: list[int]) -> Path:
    """Create (or continue) the CV folder; its record files are claimed (:mod:`landseg.output_folders`)."""
    import yaml

    from landseg.io_utils import check_writable_dir, write_json, write_text
    from landseg.output_folders import claim_outputs

    cv_dir = Path(config.run.output_dir) / cv_name(config, len(folds))
    _check_same_recipe(cv_dir, config, folds)
    check_writable_dir(cv_dir)
    claim_outputs(cv_dir, "cv", [CV_CONFIG, FOLDS_FILE, SUMMARY_JSON, SUMMARY_MD],
                  input_dirs=[config.data.data_dir])
    write_text(cv_dir / CV_CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
    write_json(cv_dir / FOLDS_FILE, {"k": len(folds), "split_seed": config.data.split_seed,
                                     "groups": [f.groups for f in folds], "images": [f.images for f in folds]})
    return cv_dir


# ----------------------------------------------------------------------------- one fold
def _finished(run_dir: Path, config: cfg.Config) -> bool:
    from landseg.runs import RunFolder
    from landseg.runs.select import comparable_config

    folder = RunFolder(run_dir)
    state, saved = folder.read_state(), folder.read_config()
    return bool(state and state.get("finished")) and saved is not None and \
        comparable_config(saved) == comparable_config(config)


def run_fold(config: cfg.Config, cv_dir: Path, fold: Fold, seed: int, settings=None) -> dict:
    """Train (or continue, or keep) one fold's run and score its best model on the fold's scenes."""
    import json

    import keras

    from landseg.inference.evaluate import evaluate_models
    from landseg.training.fit import run_training

    fc = fold_config(config, cv_dir, fold, seed)
    run_dir = Path(fc.run.output_dir) / fc.run.name
    if not _finished(run_dir, fc):
        run_dir = Path(run_training(fc))
        keras.backend.clear_session()
    from landseg.inference.evaluate import METRICS_JSON
    from landseg.runs import RunFolder

    folder = RunFolder(run_dir)
    metrics = folder.file(EVAL_DIR) / METRICS_JSON
    if not metrics.is_file() or metrics.stat().st_mtime < folder.best.stat().st_mtime:
        evaluate_models([folder.best], split="val", output=metrics.parent, settings=settings)
        keras.backend.clear_session()
    with open(metrics) as f:
        result = json.load(f)
    return fold_result(result, fold, seed, run_dir, folder.read_state())


def fold_result(metrics: dict, fold: Fold, seed: int, run_dir: Path, state: dict) -> dict:
    """One fold's row: mIoU over the classes present in its scenes' labels (and evaluate's own mIoU, which
    also counts classes only predicted), per-class IoU, the images scored and what failed."""
    cm = np.asarray(metrics["confusion_matrix"], np.int64)
    names = list(metrics["per_class"])
    present = cm.sum(axis=1) > 0
    iou = {n: metrics["per_class"][n]["iou"] for n in names}
    scored = [iou[n] for n, p in zip(names, present) if p and iou[n] is not None]
    return {
        "seed": int(seed), "fold": fold.index, "val_groups": fold.groups, "val": fold.images,
        "miou": float(np.mean(scored)) if scored else None,
        "miou_evaluate": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"],
        "present": [n for n, p in zip(names, present) if p],
        "per_class": {n: (iou[n] if p else None) for n, p in zip(names, present)},
        "images_scored": metrics["images"], "failed": metrics.get("failed", []),
        "best_epoch": state.get("best_epoch"), "train_wall_seconds": state.get("wall_seconds"),
        "run": str(run_dir),
    }


# ----------------------------------------------------------------------------- summary
def mean_sd(values) -> dict:
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    return {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v, ddof=1)) if len(v) > 1 else None,
            "n": len(v)}


def summarize(rows: list[dict], k: int, seeds: list[int]) -> dict:
    """``cv_summary.json``: every fold row, the mean and sample standard deviation of the folds' mIoU, and
    per class over the folds whose scenes hold that class; per seed when there are several."""
    names = list(rows[0]["per_class"]) if rows else []
    overall = mean_sd(r["miou"] for r in rows)
    summary = {
        "k": k, "seeds": seeds, "folds": rows,
        "mean": overall["mean"], "std": overall["std"],
        "miou_definition": "mean IoU over the classes present in the fold's validation labels (absent classes "
                           "left out); miou_evaluate also counts classes that are only predicted, as 0",
        "mean_evaluate": mean_sd(r["miou_evaluate"] for r in rows)["mean"],
        "per_class": {n: {key: v for key, v in mean_sd(r["per_class"][n] for r in rows).items()} for n in names},
        "complete": len(rows) == k * len(seeds),
    }
    if len(seeds) > 1:
        by_seed = [{"seed": s, **mean_sd(r["miou"] for r in rows if r["seed"] == s)} for s in seeds]
        summary["by_seed"] = by_seed
        summary["seed_std"] = mean_sd(b["mean"] for b in by_seed)["std"]
    return summary


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def summary_markdown(summary: dict, title: str) -> str:
    names = list(summary["per_class"])
    head = "| seed | fold | validated on | mIoU | " + " | ".join(names) + " |"
    lines = [f"# {title}", "", f"{summary['k']}-fold scene-level cross-validation, seeds {summary['seeds']}. "
             f"{summary['miou_definition']}.", "", head, "|" + "---|" * (4 + len(names))]
    for r in summary["folds"]:
        lines.append(f"| {r['seed']} | {r['fold']} | {', '.join(r['val_groups'])} | {_f(r['miou'])} | "
                     + " | ".join(_f(r["per_class"][n]) for n in names) + " |")
    sd = lambda d: f"{_f(d['mean'])} ± {_f(d['std'])}"  # noqa: E731
    lines.append(f"| | **mean ± sd** | | **{sd(summary)}** | " + " | ".join(sd(summary["per_class"][n]) for n in names)
                 + " |")
    if "by_seed" in summary:
        lines += ["", "Per seed: " + ", ".join(f"seed {b['seed']}: {sd(b)}" for b in summary["by_seed"])
                  + f"; sd of the seed means {_f(summary['seed_std'])}"]
    if not summary["complete"]:
        lines += ["", "**Incomplete**: not every fold has run yet."]
    return "\n".join(lines) + "\n"


def write_summary(cv_dir: Path, rows: list[dict], k: int, seeds: list[int]) -> dict:
    from landseg.io_utils import write_json, write_text

    summary = summarize(rows, k, seeds)
    write_json(cv_dir / SUMMARY_JSON, summary)
    write_text(cv_dir / SUMMARY_MD, summary_markdown(summary, f"Cross-validation: {cv_dir.name}"))
    return summary


# ----------------------------------------------------------------------------- the stage
def run_cv(config: dict | cfg.Config, k: int, seeds: list[int] | None = None, settings=None) -> dict:
    """Cross-validate ``config`` over ``k`` folds (and each of ``seeds``, default ``run.seed``); returns the
    summary (also ``cv_summary.json``), whose ``"folder"`` is the CV folder."""
    config = cfg.from_dict(config)
    seeds = [int(s) for s in (seeds or [config.run.seed])]
    folds = plan_folds(config, k)
    cv_dir = prepare_cv_dir(config, folds, seeds)
    rows: list[dict] = []
    for seed in seeds:
        for fold in folds:
            log.info(f"cv {cv_dir.name}: seed {seed}, fold {fold.index + 1}/{k}: validating on "
                     f"{', '.join(fold.groups)} ({len(fold.images)} image(s))")
            row = run_fold(config, cv_dir, fold, seed, settings)
            rows.append(row)
            write_summary(cv_dir, rows, k, seeds)  # after every fold: a killed CV keeps what it scored
            log.info(f"cv {cv_dir.name}: seed {seed}, fold {fold.index + 1}/{k}: mIoU {_f(row['miou'])} over "
                     f"{len(row['present'])} present class(es)")
    summary = write_summary(cv_dir, rows, k, seeds)
    from landseg.report.html import write_report

    write_report([r["run"] for r in rows], cv_dir / REPORT, title=f"Cross-validation {cv_dir.name}")
    summary["folder"] = str(cv_dir)
    return summary
