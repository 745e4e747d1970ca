"""Read what training and evaluation wrote into run folders, for a side-by-side report.

A training run folder is read through :class:`landseg.runs.RunFolder` (config, state with the
per-epoch history, run artifact, validation per-class IoU of the best model, confusion matrix,
prediction panels and learning curves). ``python -m landseg.evaluate`` writes ``metrics.json``
(held-out scores, per-class IoU, confusion matrix), ``confusion_matrix.png`` and
``panels_best/worst.png`` into the run's evaluation folders by default, or into the folder
``--output`` names; such folders are found through the ``model`` path their ``metrics.json`` records.

Everything here only reads; missing pieces (an unfinished run without ``per_class_iou.json``, a
run never evaluated) are left empty and shown as such, never guessed.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from landseg.runs import RunFolder

EVAL_METRICS_FILE = "metrics.json"  # what landseg.evaluate writes (landseg.inference.evaluate.METRICS_JSON)
# Keys that name or place a run rather than change what it trains: never listed as differences.
_NOT_A_DIFFERENCE = {"run.name", "run.output_dir", "run.tensorboard_dir", "run.resume", "train.verbose",
                     "train.resume_from"}


class ReportError(ValueError):
    """A folder given to the report is not a run folder, or the runs cannot be compared."""


@dataclass
class EvalResult:
    """One ``landseg.evaluate`` output folder (held-out scores of one model of the run)."""

    folder: Path
    dataset: str
    split: str
    images: int
    miou: float | None
    pixel_accuracy: float | None
    per_class_iou: dict[str, float | None]
    settings: dict
    model: str
    confusion_png: Path | None = None
    panels: dict[str, Path] = field(default_factory=dict)

    @property
    def label(self) -> str:
        tta = (self.settings or {}).get("tta")
        extra = f", TTA {tta}" if tta and tta != "none" else ""
        return f"{self.dataset} {self.split} ({self.images} scenes{extra})"


@dataclass
class RunData:
    """What one run folder holds, in the form the report needs."""

    label: str
    path: Path
    config: dict
    state: dict
    model_info: dict | None
    history: dict[str, list[float]]
    per_class: dict | None
    images: dict[str, Path]
    evals: list[EvalResult]
    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    timing_source: str = ""

    # ------------------------------------------------------------ model
    @property
    def model_name(self) -> str:
        if self.model_info and self.model_info.get("model"):
            return str(self.model_info["model"])
        return str(self.config.get("model", {}).get("name", "?"))

    @property
    def model_options(self) -> dict:
        if self.model_info and isinstance(self.model_info.get("model_options"), dict):
            return self.model_info["model_options"]
        return dict(self.config.get("model", {}).get("options") or {})

    @property
    def encoder(self) -> str | None:
        o = self.model_options
        for key in ("encoder", "backbone", "encoder_name"):
            if o.get(key):
                return str(o[key])
        return None

    @property
    def encoder_weights(self) -> str | None:
        o = self.model_options
        if self.encoder is None and "encoder_weights" not in o:
            return None
        w = o.get("encoder_weights")
        init = self.config.get("train", {}).get("init_from")
        text = "random init" if w in (None, "", "none", "None") else str(w)
        return text + (f"; weights from {Path(init).name}" if init else "")

    # ------------------------------------------------------------ training progress
    @property
    def epochs_completed(self) -> int:
        return int(self.state.get("epochs_completed") or len(self.history.get("epoch", [])))

    @property
    def epochs_planned(self) -> int | None:
        e = self.config.get("train", {}).get("epochs")
        return int(e) if e is not None else None

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))

    @property
    def best_val_miou(self) -> float | None:
        v = self.state.get("best_val_miou")
        if v is None and self.history.get("val_miou"):
            finite = [x for x in self.history["val_miou"] if math.isfinite(x)]
            v = max(finite) if finite else None
        return float(v) if v is not None else None

    @property
    def best_epoch(self) -> int | None:
        e = self.state.get("best_epoch")
        return int(e) if e is not None else None

    # ------------------------------------------------------------ classes
    @property
    def class_names(self) -> list[str]:
        if self.per_class:
            return [r["class"] for r in self.per_class.get("classes", [])]
        cm = (self.model_info or {}).get("classmap") or {}
        return list(cm.get("class_names") or [])

    @property
    def palette(self) -> dict[str, str]:
        """Class name -> ``#rrggbb`` from the run's class map (empty when unknown)."""
        cm = (self.model_info or {}).get("classmap") or {}
        names, colours = cm.get("class_names") or [], cm.get("palette") or []
        out = {}
        for n, c in zip(names, colours):
            out[n] = c if isinstance(c, str) else "#{:02x}{:02x}{:02x}".format(*c)
        return out

    @property
    def val_per_class_iou(self) -> dict[str, float | None]:
        if not self.per_class:
            return {}
        return {r["class"]: r.get("iou") for r in self.per_class.get("classes", [])}

    @property
    def val_miou_best_model(self) -> float | None:
        v = (self.per_class or {}).get("mean_iou", self.state.get("val_miou_best_model"))
        return float(v) if v is not None else None


# ---------------------------------------------------------------------- reading
def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: cannot be read as JSON ({e})") from None
    return data if isinstance(data, dict) else None


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_history(path: Path, state: dict | None = None) -> dict[str, list[float]]:
    """Columns of ``history.csv`` (epochs from 1) as float lists; the state's history if the CSV is absent."""
    rows: list[dict] = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    elif state and state.get("history"):
        rows = list(state["history"])
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return {k: [_num(r.get(k)) for r in rows] for k in keys}


def _timing(run_dir: Path, state: dict) -> tuple[float | None, float | None, str]:
    """(wall s, CPU s, where they come from). Recorded values first; else the span of the run's file times."""
    t = state.get("timing") if isinstance(state.get("timing"), dict) else state
    wall, cpu = t.get("wall_seconds"), t.get("cpu_seconds")
    if wall is not None or cpu is not None:
        return (float(wall) if wall is not None else None, float(cpu) if cpu is not None else None, "recorded")
    folder = RunFolder(run_dir)
    start_file = folder.config_file
    ends = [folder.state_file, folder.history, folder.last, folder.predictions, folder.per_class_json]
    ends = [p.stat().st_mtime for p in ends if p.is_file()]
    if not start_file.is_file() or not ends or not state.get("epochs_completed"):
        return None, None, ""
    return max(ends) - start_file.stat().st_mtime, None, "file times"


def _model_file_in(model_path: str, run_dir: Path) -> bool:
    try:
        return Path(model_path).resolve().parent == run_dir.resolve()
    except (OSError, ValueError):
        return False


def read_eval(folder: Path) -> EvalResult | None:
    """A ``landseg.evaluate`` output folder, or None when it holds no ``metrics.json``."""
    m = _read_json(folder / EVAL_METRICS_FILE)
    if m is None or ("miou" not in m and "mean_iou" not in m):
        return None
    pc = m.get("per_class") or {}
    if isinstance(pc, dict):  # {name: {"iou": ...}}
        per_class = {n: (d or {}).get("iou") for n, d in pc.items()}
    else:  # [{"name" (or "class"): ..., "iou": ...}] as landseg.metrics.summarize writes it
        per_class = {r.get("name", r.get("class")): r.get("iou") for r in pc if isinstance(r, dict)}
    panels = {k: folder / f"panels_{k}.png" for k in ("best", "worst") if (folder / f"panels_{k}.png").is_file()}
    cm_png = folder / "confusion_matrix.png"
    return EvalResult(folder=folder, dataset=str(m.get("dataset", "?")), split=str(m.get("split", "?")),
                      images=int(m.get("images") or 0), miou=m.get("miou", m.get("mean_iou")),
                      pixel_accuracy=m.get("pixel_accuracy"),
                      per_class_iou=per_class, settings=m.get("settings") or {}, model=str(m.get("model", "")),
                      confusion_png=cm_png if cm_png.is_file() else None, panels=panels)


def find_evals(run_dir: Path, eval_dirs: Sequence[Path] = ()) -> list[EvalResult]:
    """Evaluate outputs of this run: ``<run>/eval_*/`` plus folders under ``eval_dirs`` whose
    ``metrics.json`` names a model file in this run folder (searched up to three levels deep).
    Ensemble evaluations (``settings.ensemble`` lists several models) are left out."""
    found: dict[Path, EvalResult] = {}
    candidates = sorted(d for d in RunFolder(run_dir).eval_dirs() if (d / EVAL_METRICS_FILE).is_file())
    for root in eval_dirs:
        root = Path(root)
        for depth in ("", "*/", "*/*/", "*/*/*/"):
            candidates += sorted(p.parent for p in root.glob(f"{depth}{EVAL_METRICS_FILE}"))
    for folder in candidates:
        key = folder.resolve()
        if key in found:
            continue
        ev = read_eval(folder)
        if ev is None:
            continue
        if len(ev.settings.get("ensemble") or []) > 1:
            continue  # an ensemble's scores are not this run's
        inside = folder.resolve().parent == run_dir.resolve()
        if inside or _model_file_in(ev.model, run_dir):
            found[key] = ev
    return list(found.values())


def read_run_data(path: str | os.PathLike, eval_dirs: Sequence[str | os.PathLike] = (),
                  label: str | None = None) -> RunData:
    """Read one training run folder for the report; raises :class:`ReportError` when it is not one."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such folder")
    folder = RunFolder(run_dir)
    state = _read_json(folder.state_file)
    if not folder.config_file.is_file() or state is None:
        raise ReportError(f"{run_dir}: not a training run folder ({RunFolder.CONFIG} and {RunFolder.STATE} "
                          "expected; it is written by python -m landseg.train)")
    try:
        config = folder.read_config() or {}
    except (OSError, ValueError) as e:
        raise ReportError(f"{folder.config_file}: cannot be read ({e})") from None
    images = {p.stem: p for p in (folder.confusion, folder.predictions, folder.curves) if p.is_file()}
    wall, cpu, source = _timing(run_dir, state)
    return RunData(label=label or run_dir.name, path=run_dir, config=config, state=state,
                   model_info=_read_json(folder.info_file),
                   history=read_history(folder.history, state), per_class=_read_json(folder.per_class_json),
                   images=images, evals=find_evals(run_dir, [Path(d) for d in eval_dirs]),
                   wall_seconds=wall, cpu_seconds=cpu, timing_source=source)


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Folder names, lengthened with parent folders until they tell the runs apart."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while True:
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            return labels
        depth += 1


def load_runs(paths: Iterable[str | os.PathLike], eval_dirs: Sequence[str | os.PathLike] = ()) -> list[RunData]:
    paths = [Path(p) for p in paths]
    if not paths:
        raise ReportError("no run folders given")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ReportError("the same run folder is given twice")
    return [read_run_data(p, eval_dirs, label) for p, label in zip(paths, unique_labels(paths))]


# ---------------------------------------------------------------------- comparing
def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_MISSING = object()


def config_differences(runs: Sequence[RunData]) -> list[tuple[str, list[object]]]:
    """(dotted key, value per run) for every config key whose value is not the same in all runs.

    A key a run's config lacks shows as ``None`` there. With one run nothing differs."""
    flats = [flatten(r.config) for r in runs]
    keys: list[str] = []
    for f in flats:
        keys += [k for k in f if k not in keys]
    diffs = []
    for k in keys:
        if k in _NOT_A_DIFFERENCE:
            continue
        values = [f.get(k, _MISSING) for f in flats]
        shown = [None if v is _MISSING else v for v in values]
        if any(json.dumps(v, sort_keys=True, default=str) != json.dumps(values[0], sort_keys=True, default=str)
               for v in values[1:]):
            diffs.append((k, shown))
    return diffs


def class_union(runs: Sequence[RunData]) -> list[str]:
    names: list[str] = []
    for r in runs:
        names += [n for n in r.class_names if n not in names]
        for ev in r.evals:
            names += [n for n in ev.per_class_iou if n not in names]
    return names


def best_indices(values: Sequence[float | None], tol: float = 5e-5) -> set[int]:
    """Positions of the highest value (ties within ``tol`` all count); empty unless at least two
    values are numbers (a lone score is not "the best" of anything)."""
    finite = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return set()
    top = max(v for _, v in finite)
    return {i for i, v in finite if v >= top - tol}


def same_preview_scenes(runs: Sequence[RunData]) -> bool:
    """True when every run's preview crops come from the same data, split and crop settings (so
    ``predictions.png`` shows the same validation scenes); the first ``num_preview`` validation crops."""
    keys = ("data.name", "data.data_dir", "data.val_fraction", "data.split_seed", "data.split_by_group",
            "data.crop_size", "data.synthetic", "train.num_preview", "data.hist_reference")
    flats = [flatten(r.config) for r in runs]
    sig = [json.dumps({k: v for k, v in f.items() if any(k == key or k.startswith(key + ".") for key in keys)},
                      sort_keys=True, default=str) for f in flats]
    return len(set(sig)) <= 1
