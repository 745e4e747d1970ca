"""Two real tiny training runs (and a held-out evaluation of one), made once per test session.

12 synthetic 64 px scenes, 32 px crops, the two-conv test network of tests/train (a real model's graph
takes ~40 s to trace on 2 busy cores), 2 epochs of 3 steps; the runs differ only in their seed. About
15 s on 2 quiet CPU cores (45 s busy), shared by every report test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run_training(config: dict) -> Path:
    from landseg.training import run_training

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    import tiny_model

    tiny_model.register_tiny()
    try:
        return run_training(config)
    finally:  # the model registry tests must never see it
        tiny_model.unregister_tiny()


def _evaluate(argv: list[str]) -> None:
    """``python -m landseg.evaluate ARGS``, the public command, in a child process."""
    proc = subprocess.run([sys.executable, "-m", "landseg.evaluate", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict:
    from landseg.data.synthetic import ensure_synthetic_dataset

    root = tmp_path_factory.mktemp("report")
    data = ensure_synthetic_dataset(root / "data", n_images=12, size=64)
    base = {
        "run": {"output_dir": str(root / "runs"), "tensorboard_dir": str(root / "tb")},
        "data": {"name": "synthetic", "data_dir": str(data), "crop_size": 32, "val_fraction": 0.25,
                 "synthetic": {"n_images": 12, "size": 64}},
        "model": {"name": "tiny_test_net", "options": {}},
        "train": {"epochs": 2, "batch_size": 4, "steps_per_epoch": 3, "val_steps": 2, "num_preview": 2, "verbose": 0},
    }
    dirs = {}
    for name, seed in (("run-alpha", 0), ("run-beta", 1)):
        config = {k: dict(v) for k, v in base.items()}
        config["run"].update(name=name, seed=seed)
        dirs[name] = Path(_run_training(config))
    # a held-out evaluation of run-alpha where landseg.evaluate puts it by default (<run>/eval_synthetic_val)
    _evaluate(["--model", str(dirs["run-alpha"] / "best.keras"), "--dataset", "synthetic",
                         "--data-dir", str(data), "--panels", "1", "--no-progress"])
    return {"root": root, "data": data, **dirs}


@pytest.fixture(scope="session")
def report_file(tiny_runs) -> Path:
    from landseg.report import write_report

    return write_report([tiny_runs["run-alpha"], tiny_runs["run-beta"]], tiny_runs["root"] / "report.html")
