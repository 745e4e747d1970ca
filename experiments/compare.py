"""Controlled comparisons on the synthetic dataset: model, dropout, loss, pseudo-labels, ensembles.

    python experiments/compare.py                 # train what is missing, evaluate, write the tables
    python experiments/compare.py --dry-run       # print every step's command, run nothing
    python experiments/compare.py --only loss     # one comparison (or one step name) and what it needs
    python experiments/compare.py --tables-only   # rewrite the tables from what is already on disk

Every arm is a training config in ``experiments/compare/`` with the same data, split, seed and
budget (epochs x steps x batch, optimizer, schedule); each differs from the CSE-UNet baseline
only in what its comparison varies (``tests/test_compare.py`` checks that). Runs are reused: an
arm whose run folder ``experiments/runs/compare/<run.name>/`` holds a finished run of the same
config is not trained again (delete that folder to retrain). Every model is scored by the
project's own ``python -m landseg.evaluate`` on whole validation scenes; self-training uses
``python -m landseg.self_train``; the ensemble rows by ``python -m landseg.evaluate --models A B``.

Writes ``experiments/results/comparisons.md`` (one table per comparison with its commands) and
``experiments/results/comparisons.csv``, atomically (``landseg.io_utils``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from landseg.io_utils import write_json, write_text  # noqa: E402

CONFIG_DIR = Path("experiments/compare")
RUNS = Path("experiments/runs/compare")
EVAL_DIR = RUNS / "eval"
TIMINGS = RUNS / "timings.json"
RESULTS_MD = Path("experiments/results/comparisons.md")
RESULTS_CSV = Path("experiments/results/comparisons.csv")
REPORTS = RUNS / "reports"  # one landseg.report page per comparison (git-ignored with the runs: ~5 MB each)
DATASET = "synthetic"
DATA_DIR = "data/compare/synthetic"
# Unlabelled pool for pseudo-labelling: other synthetic scenes (generator seed 1, the labelled set
# uses seed 0). Their masks are never trained on; they only measure how right the pseudo-labels are.
UNLABELLED_ROOT = "data/compare/unlabelled"
UNLABELLED = {"n_images": 48, "size": 128, "seed": 1}
THRESHOLD = 0.9
CLASSES = ("agriculture", "forest", "water", "road", "building", "bare_ground")


@dataclass
class Step:
    """One command: a training run ("train"), a self-training round ("selftrain") or a scoring ("eval")."""

    name: str
    kind: str
    needs: tuple[str, ...] = ()
    config: str | None = None          # train: the arm's config file
    models: tuple[str, ...] = ()       # eval: step names whose model is scored (several = ensemble)
    tta: str = "none"
    label: str = ""
    extra: dict = field(default_factory=dict)


ARMS = {  # training arms: step name -> config file
    "cse_unet": "cse_unet.yaml",
    "unet_resnet18": "unet_resnet18.yaml",
    "cse_unet_dropout": "cse_unet_dropout.yaml",
    "cse_unet_dice_focal": "cse_unet_dice_focal.yaml",
    "cse_unet_ce_dice": "cse_unet_ce_dice.yaml",
    "cse_unet_seed1": "cse_unet_seed1.yaml",  # noise reference: the baseline with another run seed
}
ENSEMBLE = ("cse_unet", "unet_resnet18", "cse_unet_dropout")


def _steps() -> dict[str, Step]:
    s: dict[str, Step] = {}
    for name, cfg in ARMS.items():
        s[name] = Step(name, "train", config=str(CONFIG_DIR / cfg))
    s["cse_unet_selftrain"] = Step("cse_unet_selftrain", "selftrain", needs=("cse_unet",), config=str(CONFIG_DIR / ARMS["cse_unet"]))
    for name in list(ARMS) + ["cse_unet_selftrain"]:
        s[f"eval:{name}"] = Step(f"eval:{name}", "eval", needs=(name,), models=(name,))
    for name in ENSEMBLE:
        s[f"eval:{name}+tta"] = Step(f"eval:{name}+tta", "eval", needs=(name,), models=(name,), tta="d4")
    s["eval:ensemble"] = Step("eval:ensemble", "eval", needs=ENSEMBLE, models=ENSEMBLE)
    s["eval:ensemble+tta"] = Step("eval:ensemble+tta", "eval", needs=ENSEMBLE, models=ENSEMBLE, tta="d4")
    return s


STEPS = _steps()

COMPARISONS = [  # (key, title, [(row label, eval step)], what the rows vary)
    ("seed", "(0) Noise reference: the baseline with run seed 0 vs 1", [("CSE-UNet w8, seed 0 (baseline)", "eval:cse_unet"),
                                                                       ("CSE-UNet w8, seed 1", "eval:cse_unet_seed1")],
     "run.seed only (weight init, crops, augmentation order; same data, split and budget)"),
    ("model", "(1) UNet (ResNet18 encoder) vs CSE-UNet", [("CSE-UNet w8 (baseline)", "eval:cse_unet"),
                                                          ("UNet ResNet18", "eval:unet_resnet18")],
     "model.name / model.options"),
    ("dropout", "(2) Dropout off vs on (CSE-UNet)", [("dropout 0.0 (baseline)", "eval:cse_unet"),
                                                     ("dropout 0.2", "eval:cse_unet_dropout")], "model.options.dropout"),
    ("loss", "(3) Loss: partial_ce vs dice+focal vs ce+dice (CSE-UNet)", [("partial_ce (baseline)", "eval:cse_unet"),
                                                                         ("dice+focal", "eval:cse_unet_dice_focal"),
                                                                         ("ce+dice", "eval:cse_unet_ce_dice")], "loss.name"),
    ("pseudo", "(4) Pseudo-labels: without vs with one self-training round (CSE-UNet)",
     [("labelled only (baseline)", "eval:cse_unet"), ("+1 self-training round", "eval:cse_unet_selftrain")],
     f"data.pseudo_label_dirs (pseudo-labels at confidence >= {THRESHOLD} on {UNLABELLED['n_images']} unlabelled scenes)"),
    ("ensemble", "(5) Single models vs their ensemble, without / with TTA (d4)",
     [("CSE-UNet", "eval:cse_unet"), ("CSE-UNet + TTA", "eval:cse_unet+tta"),
      ("UNet ResNet18", "eval:unet_resnet18"), ("UNet ResNet18 + TTA", "eval:unet_resnet18+tta"),
      ("CSE-UNet dropout", "eval:cse_unet_dropout"), ("CSE-UNet dropout + TTA", "eval:cse_unet_dropout+tta"),
      ("ensemble of the 3 (equal weights)", "eval:ensemble"), ("ensemble of the 3 + TTA", "eval:ensemble+tta")],
     "inference only: members and TTA"),
]


# ----------------------------------------------------------------------------- paths and commands
def run_name(config_file: str) -> str:
    with open(ROOT / config_file) as f:
        return yaml.safe_load(f)["run"]["name"]


def _candidates(name: str) -> list[Path]:
    return [RUNS / name] + [RUNS / f"{name}-{i}" for i in range(2, 100)]


def finished_run(name: str) -> Path | None:
    """The newest finished run folder for ``name`` (the trainer numbers repeats name-2, name-3, ...)."""
    found = None
    for d in _candidates(name):
        if not (ROOT / d).exists():
            continue
        try:
            state = json.loads((ROOT / d / "state.json").read_text())
        except (OSError, ValueError):
            continue
        if state.get("finished") and (ROOT / d / "best.keras").is_file():
            found = d
    return found


def model_path(step: str) -> Path:
    """Where a training step's best model is (the finished run, else where a first run would put it)."""
    st = STEPS[step]
    if st.kind == "selftrain":
        rec = ROOT / RUNS / f"{run_name(st.config)}-selftrain" / "self_train.json"
        if rec.is_file():
            rounds = json.loads(rec.read_text())["rounds"]
            if len(rounds) > 1:
                return Path(os.path.relpath(rounds[-1]["model"], ROOT))
        return RUNS / f"{run_name(st.config)}-self1" / "best.keras"
    name = run_name(st.config)
    return (finished_run(name) or RUNS / name) / "best.keras"


def command(step: str) -> list[str]:
    st = STEPS[step]
    py = "python"
    if st.kind == "train":
        return [py, "-m", "landseg.train", "--config", st.config]
    if st.kind == "selftrain":
        return [py, "-m", "landseg.self_train", "--config", st.config, "--rounds", "1",
                "--unlabelled", f"{UNLABELLED_ROOT}/images", "--threshold", str(THRESHOLD),
                "--init-model", str(model_path(st.needs[0])), "--no-progress"]
    out = str(EVAL_DIR / step.split(":", 1)[1].replace("+", "_"))
    models = [str(model_path(m)) for m in st.models]
    tta = ["--tta", st.tta] if st.tta != "none" else []
    return [py, "-m", "landseg.evaluate", "--models", *models, "--dataset", DATASET, "--data-dir", DATA_DIR,
            "--split", "val", "--output", out, "--no-progress"] + tta


def eval_dir(step: str) -> Path:
    return Path(command(step)[command(step).index("--output") + 1])


def shell(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def closure(names: list[str]) -> list[str]:
    """``names`` and everything they need, in dependency order."""
    order: list[str] = []

    def visit(n):
        if n in order:
            return
        for d in STEPS[n].needs:
            visit(d)
        order.append(n)

    for n in names:
        visit(n)
    return order


def select(only: list[str] | None) -> list[str]:
    if not only:
        return closure(list(STEPS))
    names = []
    keys = {c[0]: c for c in COMPARISONS}
    for o in only:
        if o in keys:
            names += [row[1] for row in keys[o][2]]
        elif o in STEPS:
            names.append(o)
        else:
            raise SystemExit(f"--only {o!r}: not a comparison ({', '.join(keys)}) or step ({', '.join(STEPS)})")
    return closure(names)


# ----------------------------------------------------------------------------- running
def load_timings() -> dict:
    p = ROOT / TIMINGS
    return json.loads(p.read_text()) if p.is_file() else {}


def save_timing(step: str, record: dict) -> None:
    t = load_timings()
    t[step] = record
    write_json(ROOT / TIMINGS, t)


def _same_config(run_dir: Path, config_file: str) -> bool:
    from landseg import config as cfg
    from landseg.runs import RunFolder
    from landseg.runs.select import comparable_config

    want = cfg.load_config(ROOT / config_file)
    have = RunFolder(ROOT / run_dir).read_config() or {}
    return comparable_config(have) == comparable_config(want)


def is_done(step: str, reeval: bool) -> tuple[bool, str]:
    st = STEPS[step]
    if st.kind == "train":
        d = finished_run(run_name(st.config))
        if d is None:
            return False, ""
        if not _same_config(d, st.config):
            return False, f"{d} was trained with another config; training a new run"
        return True, f"reusing finished run {d}"
    if st.kind == "selftrain":
        rec = ROOT / RUNS / f"{run_name(st.config)}-selftrain" / "self_train.json"
        if rec.is_file():
            r = json.loads(rec.read_text())
            m = ROOT / model_path(step)
            if len(r["rounds"]) > 1 and m.is_file() and os.path.samefile(r["rounds"][0]["model"], ROOT / model_path(st.needs[0])):
                return True, f"reusing self-training round in {m.parent}"
        return False, ""
    metrics = ROOT / eval_dir(step) / "metrics.json"
    if reeval or not metrics.is_file():
        return False, ""
    newest_model = max((ROOT / model_path(m)).stat().st_mtime for m in st.models)
    return metrics.stat().st_mtime > newest_model, f"reusing {metrics}"


def run_step(step: str, log_dir: Path) -> dict:
    cmd = command(step)
    argv = [sys.executable] + cmd[1:]
    log = ROOT / log_dir / f"{step.replace(':', '_').replace('+', '_')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {step}: {shell(cmd)}", flush=True)
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    secs = time.time() - t0
    tail = ""
    if rc != 0:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errs = [ln for ln in lines if "Error" in ln or "error" in ln]
        tail = (errs[-1] if errs else (lines[-1] if lines else f"exit code {rc}"))[:300]
    rec = {"command": shell(cmd), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
           "seconds": round(secs, 1), "rc": rc, "error": tail, "log": str(log.relative_to(ROOT))}
    save_timing(step, rec)
    print(f"    -> rc {rc} in {secs:.0f} s" + (f": {tail}" if tail else ""), flush=True)
    return rec


def ensure_data() -> None:
    from landseg.data.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(ROOT / DATA_DIR, n_images=64, size=128, seed=0)
    ensure_synthetic_dataset(ROOT / UNLABELLED_ROOT, **UNLABELLED)


# ----------------------------------------------------------------------------- collecting
def _read_json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def pseudo_label_quality(step: str) -> dict | None:
    """Accuracy of the confident pseudo-labels against the unlabelled pool's hidden masks."""
    import numpy as np
    from PIL import Image

    rec = _read_json(ROOT / RUNS / f"{run_name(STEPS[step].config)}-selftrain" / "self_train.json")
    if not rec or len(rec["rounds"]) < 2:
        return None
    pseudo = Path(rec["rounds"][1]["pseudo_dir"])
    summary = _read_json(pseudo / "summary.json")
    if not summary:
        return None
    right = labelled = 0
    covered = np.zeros(len(CLASSES), np.int64)  # truth pixels of each class given their correct pseudo-label
    present = np.zeros(len(CLASSES), np.int64)
    for e in summary["images"]:
        mask = np.asarray(Image.open(pseudo / e["mask"]))
        truth = np.asarray(Image.open(ROOT / UNLABELLED_ROOT / "masks" / e["image"]))
        keep = mask != 255
        right += int((mask[keep] == truth[keep]).sum())
        labelled += int(keep.sum())
        covered += np.bincount(truth[keep & (mask == truth)].ravel(), minlength=len(CLASSES))[:len(CLASSES)]
        present += np.bincount(truth[truth != 255].ravel(), minlength=len(CLASSES))[:len(CLASSES)]
    return {"fraction_labelled": summary["fraction_labelled"], "accuracy": right / labelled if labelled else float("nan"),
            "images": len(summary["images"]),
            "class_coverage": {c: float(covered[i] / present[i]) if present[i] else None for i, c in enumerate(CLASSES)}}


def param_count(model_file: Path) -> int | None:
    """Saved model variables (BatchNorm statistics included, optimizer state excluded), read from the
    .keras zip without building the model."""
    import zipfile

    import h5py

    try:
        with zipfile.ZipFile(model_file) as z:
            data = z.read("model.weights.h5")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    total = [0]

    def visit(_name, obj):
        if isinstance(obj, h5py.Dataset):
            total[0] += obj.size

    with h5py.File(io.BytesIO(data), "r") as f:
        for key in f:
            if key != "optimizer" and isinstance(f[key], h5py.Group):
                f[key].visititems(visit)
    return total[0]


def collect(step: str, timings: dict) -> dict:
    """One table row: eval metrics plus the training runs' epochs and wall times."""
    st = STEPS[step]
    row = {"step": step, "tta": st.tta, "members": "+".join(st.models), "status": "not run", "error": ""}
    t_eval = timings.get(step, {})
    metrics = _read_json(ROOT / eval_dir(step) / "metrics.json")
    failed = [t for t in [t_eval] + [timings.get(m, {}) for m in closure(list(st.models))] if t.get("rc")]
    if failed:
        row["status"] = "FAILED"
        row["error"] = "; ".join(f"{f['command'].split(' --')[0]}: {f['error']}" for f in failed)
    if metrics:
        row.update(status="ok" if not failed else row["status"], miou=metrics["miou"], pixel_accuracy=metrics["pixel_accuracy"],
                   images=metrics["images"], eval_seconds=t_eval.get("seconds"))
        for c in CLASSES:
            row[f"iou_{c}"] = (metrics["per_class"].get(c) or {}).get("iou")
    epochs = []
    for m in st.models:
        state = _read_json((ROOT / model_path(m)).parent / "state.json") or {}
        if state:
            epochs.append(f"{state.get('epochs_completed')} (best {state.get('best_epoch')})")
    row["epochs"] = "; ".join(epochs)
    counts = [param_count(ROOT / model_path(m)) for m in st.models]
    row["params"] = sum(counts) if counts and all(c is not None for c in counts) else None
    own = [timings.get(m, {}).get("seconds") for m in st.models]
    row["train_seconds"] = sum(own) if own and all(s is not None for s in own) else None
    return row


def _f(v, digits=4) -> str:
    if v is None or v == "":
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if v == v else "n/a"
    return str(v)


def machine_note() -> str:
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    try:
        import tensorflow as tf  # noqa: F401

        tfv = tf.__version__
    except Exception:  # noqa: BLE001
        tfv = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPU cores ({model}), no GPU, TensorFlow {tfv}, Python {platform.python_version()}; "
            f"shared with other jobs (1-min load average {load:.1f} when the tables were written), so wall times are "
            "only rough and comparable between rows at best to within tens of percent.")


def seed_gap() -> float | None:
    """|mIoU(seed 0) - mIoU(seed 1)| of the baseline, in points: a one-sample look at run-to-run noise."""
    a, b = (_read_json(ROOT / eval_dir(s) / "metrics.json") for s in ("eval:cse_unet", "eval:cse_unet_seed1"))
    return abs(a["miou"] - b["miou"]) * 100 if a and b else None


def verdict(key: str, rows: list[dict]) -> str:
    ok = [r for r in rows if r.get("miou") is not None]
    if len(ok) < 2:
        return "Not enough arms finished to compare."
    base = ok[0]
    diffs = ", ".join(f"{r['label']} {100 * (r['miou'] - base['miou']):+.1f}" for r in ok[1:])
    gap = seed_gap()
    noise = (f"changing only the run seed moved the baseline's mIoU by {gap:.1f} points (table 0, one pair of seeds, "
             "so the real spread may be larger)" if gap is not None else "seed-to-seed spread was not measured")
    if key == "seed":
        return (f"mIoU difference, in points: {diffs}. This is the noise floor for the other tables: a gap of this size "
                "between two arms can come from the seed alone. Every arm except this one uses seed 0, one 64-scene "
                "synthetic dataset (13 validation scenes) and 10 epochs x 36 steps of batch 8 on 64 px crops.")
    s = (f"mIoU differences from the first row, in points: {diffs}. One seed per arm, one 64-scene synthetic dataset "
         f"(13 validation scenes), 10 epochs x 36 steps of batch 8 on 64 px crops; {noise}. Only gaps well beyond that, "
         "consistent across classes, suggest a real effect, and none of this says how the variants rank on real imagery "
         "or at full training length (most arms' best epoch is the last one: still improving).")
    if key == "model" and all(r.get("params") for r in ok[:2]):
        s += (f" The two arms have equal steps, not equal capacity or compute: the UNet has about "
              f"{ok[1]['params'] / ok[0]['params']:.0f}x the CSE-UNet's parameters (the CSE-UNet here is the width-8 CPU default, not the paper's width-64 network) and took "
              "longer per step, so this compares these two configurations, not the architectures as such.")
    if key == "pseudo":
        s += (" The self-trained model is trained from scratch with the same number of steps on labelled + pseudo-labelled "
              "scenes, so it sees fewer labelled crops per step than the baseline.")
    if key == "ensemble":
        s += " Ensemble members are trained once each; TTA and ensembling change inference only (same weights)."
        singles = [r for r in ok if not r["members"].count("+") and r["tta"] == "none"]
        ens = [r for r in ok if r["members"].count("+") and r["tta"] == "none"]
        if singles and ens:
            best = max(singles, key=lambda r: r["miou"])
            s += (f" Here the equal-weight ensemble is {100 * (ens[0]['miou'] - best['miou']):+.1f} points from its best "
                  f"member ({best['label']}): averaging with two much weaker members dilutes the strong one, so "
                  "ensembling only pays between members of similar quality (or with weights).")
    if key == "loss":
        s += " Losses were not tuned (same lr for all); a loss can lose here only because the shared lr suits it less."
    return s


def run_dirs_of(rows: list[tuple[str, str]]) -> list[Path]:
    """The training run folders behind a comparison's rows (finished ones only, each once)."""
    dirs: list[Path] = []
    for _, step in rows:
        for m in STEPS[step].models:
            d = model_path(m).parent
            if (ROOT / d / "state.json").is_file() and d not in dirs:
                dirs.append(d)
    return dirs


def write_report_page(key: str, title: str, rows: list[tuple[str, str]]) -> tuple[Path | None, str]:
    """``python -m landseg.report`` over a comparison's runs (with their scorings from EVAL_DIR):
    (page or None, the command that writes it)."""
    from landseg.report import ReportError, write_report

    dirs = run_dirs_of(rows)
    out = REPORTS / f"{key}.html"
    cmd = shell(["python", "-m", "landseg.report", *map(str, dirs), "--evals", str(EVAL_DIR), "--title", title,
                 "--output", str(out)])
    if not dirs:
        return None, cmd
    try:
        write_report([ROOT / d for d in dirs], ROOT / out, eval_dirs=[ROOT / EVAL_DIR], title=title)
    except (ReportError, OSError) as e:
        print(f"report {key}: {e}", file=sys.stderr)
        return None, cmd
    return out, cmd


def write_tables(only_steps: list[str] | None = None) -> None:
    timings = load_timings()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = io.StringIO()
    csv_rows = []
    md = [
        "# Controlled comparisons (synthetic data)",
        "",
        f"Written {date} by `python experiments/compare.py` (arm configs: `experiments/compare/*.yaml`; every number "
        "below comes from the commands listed under its table, run for real on this machine).",
        f"Machine: {machine_note()}",
        f"Total wall time of all {len(timings)} commands: {sum(t.get('seconds') or 0 for t in timings.values()) / 60:.1f} min "
        "(trainings and scorings partly ran two at a time).",
        "",
        "Setup shared by every arm (see `experiments/compare/cse_unet.yaml`): built-in synthetic dataset, 64 scenes of "
        "128x128 (`data/compare/synthetic`), validation split 0.2 with split_seed 0 (51 train / 13 val scenes), run seed 0, "
        "64 px random crops with flips/rot90, batch 8, 36 steps/epoch, 10 epochs, Adam lr 0.003 with cosine decay. "
        "Scores: `python -m landseg.evaluate --split val` on the 13 whole validation scenes (sliding window); mIoU averages "
        "classes present in target or prediction (absent-class policy `exclude`). `train s` is the wall time of the "
        "training command(s) of the row's own model(s), `eval s` that of the scoring command (both include process "
        "start and TensorFlow import). `params`: saved model variables (BatchNorm statistics included; summed over "
        "ensemble members).",
        "",
    ]
    for key, title, rows, varies in COMPARISONS:
        md += [f"## {title}", "", f"Varies: {varies}.", ""]
        hdr = ["arm", "status", "val mIoU", "pixel acc"] + [f"IoU {c}" for c in CLASSES] + ["params", "epochs (best)", "train s", "eval s"]
        md += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        collected = []
        for label, step in rows:
            r = collect(step, timings)
            r["label"] = label
            collected.append(r)
            cells = [label, r["status"] + (f": {r['error']}" if r["error"] else ""), _f(r.get("miou")), _f(r.get("pixel_accuracy"))]
            cells += [_f(r.get(f"iou_{c}"), 3) for c in CLASSES]
            cells += [f"{r['params'] / 1e6:.2f} M" if r.get("params") else "n/a", r.get("epochs") or "n/a", _f(r.get("train_seconds"), 0), _f(r.get("eval_seconds"), 0)]
            md.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            csv_rows.append({"comparison": key, "arm": label, **{k: v for k, v in r.items() if k != "label"}})
        if key == "ensemble":
            md += ["", "The ensemble rows are `landseg.evaluate --models A B`: the same split, sliding-window predictor, "
                   "metrics and report files as one model, on the members' probabilities averaged (equal weights)."]
        if key == "pseudo":
            md += ["", "`train s` of the self-training row is the whole `landseg.self_train` command (pseudo-labelling the "
                   "unlabelled scenes with the baseline model, then training from scratch); the baseline it starts from is "
                   "the first row's run (`--init-model`), not trained again."]
            q = pseudo_label_quality("cse_unet_selftrain")
            if q:
                md += ["", f"Pseudo-labels (round 1, from the baseline model, threshold {THRESHOLD}): {q['images']} unlabelled "
                       f"scenes, {100 * q['fraction_labelled']:.1f}% of pixels labelled, {100 * q['accuracy']:.1f}% of those "
                       "correct against the scenes' hidden true masks (never used for training). Share of each class's true pixels "
                       "that received their correct pseudo-label: " + ", ".join(
                           f"{c} {100 * v:.0f}%" for c, v in q["class_coverage"].items() if v is not None) + "."]
        page, page_cmd = write_report_page(key, title, rows)
        if page is not None:
            md += ["", f"Side by side (runs table, per-class IoU, learning curves, confusion matrices, validation scenes): "
                   f"[{page}]({os.path.relpath(ROOT / page, (ROOT / RESULTS_MD).parent)}), one self-contained page "
                   f"(not in git, like the runs; rewrite it with `{page_cmd}`)."]
        md += ["", verdict(key, collected), "", "Commands (from the repository root, in order):", "", "```"]
        for step in closure([s for _, s in rows]):
            t = timings.get(step)
            md.append(t["command"] if t else shell(command(step)))
        md += ["```", ""]
    fails = {s: t for s, t in timings.items() if t.get("rc")}
    if fails:
        md += ["## Failed steps", ""] + [f"- `{s}` (exit {t['rc']}): {t['error']} (log `{t['log']}`)" for s, t in fails.items()] + [""]
    write_text(ROOT / RESULTS_MD, "\n".join(md))
    fields = ["comparison", "arm", "step", "status", "miou", "pixel_accuracy"] + [f"iou_{c}" for c in CLASSES] + [
        "params", "epochs", "train_seconds", "eval_seconds", "tta", "members", "images", "error"]
    w = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in csv_rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(ROOT / RESULTS_CSV, out.getvalue())
    print(f"wrote {RESULTS_MD} and {RESULTS_CSV}")


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python experiments/compare.py", description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="comparison(s) (" + ", ".join(c[0] for c in COMPARISONS) + ") or step(s); their dependencies run too")
    p.add_argument("--dry-run", action="store_true", help="print the steps and their commands, run nothing")
    p.add_argument("--tables-only", action="store_true", help="only rewrite the result tables from what is on disk")
    p.add_argument("--reeval", action="store_true", help="score again even where metrics.json is newer than the models")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    steps = select(args.only)
    if args.dry_run:
        for s in steps:
            print(f"{s}\t{shell(command(s))}")
        return 0
    if not args.tables_only:
        ensure_data()
        failed: set[str] = set()
        for s in steps:
            st = STEPS[s]
            bad = [d for d in closure(list(st.needs)) if d in failed]
            if bad:
                print(f"skipping {s}: {', '.join(bad)} failed", flush=True)
                failed.add(s)
                continue
            done, why = is_done(s, args.reeval)
            if done:
                print(f"{s}: {why}", flush=True)
                continue
            if why:
                print(f"{s}: {why}", flush=True)
            if run_step(s, RUNS / "logs")["rc"] != 0:
                failed.add(s)
    write_tables()
    return 0


if __name__ == "__main__":
    sys.exit(main())
