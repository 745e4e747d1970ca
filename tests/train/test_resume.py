"""A run SIGKILLed mid-epoch (from outside, as a pre-empted machine is) and started again with the same command resumes from its last completed
epoch, ends with the configured number of epochs, and keeps one continuous history."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landseg.training.callbacks import lr_at

REPO = Path(__file__).resolve().parents[2]


def _rows(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_kill_and_resume(tiny_config, tmp_path):
    c = tiny_config(train={"epochs": 3})
    args = [f"run.output_dir={c['run']['output_dir']}", f"run.tensorboard_dir={c['run']['tensorboard_dir']}",
            "run.name=tiny", f"data.data_dir={c['data']['data_dir']}", "data.crop_size=32",
            "data.val_fraction=0.25", "data.synthetic={n_images: 12, size: 64}",
            "model.name=tiny_test_net", "train.epochs=3", "train.batch_size=4",
            "train.steps_per_epoch=3", "train.val_steps=2", "train.num_preview=2", "train.verbose=2"]
    cmd = [sys.executable, str(Path(__file__).with_name("run_train.py")), *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SLOW_FROM_EPOCH="1")
    marker = Path(c["run"]["output_dir"]) / "slow"  # written once epoch 2 (0-based 1) has run a batch
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.time() + 300
    while not marker.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # from outside, mid-epoch 2
    _, err = first.communicate(timeout=60)
    assert first.returncode == -9, err[-3000:]
    run_dir = Path(c["run"]["output_dir"]) / "tiny"
    before = _rows(run_dir)
    assert [int(r["epoch"]) for r in before] == [1]
    assert json.loads((run_dir / "state.json").read_text())["epochs_completed"] == 1

    env.pop("SLOW_FROM_EPOCH")
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming" in second.stdout and "after epoch 1 of 3" in second.stdout
    assert not (Path(c["run"]["output_dir"]) / "tiny-2").exists()
    after = _rows(run_dir)
    assert [int(r["epoch"]) for r in after] == [1, 2, 3]
    assert after[0] == before[0]  # the first epoch's record is kept as it was
    # the schedule continued at the right global step: lr logged at the end of each epoch
    from landseg.config import from_dict

    sched = from_dict(c).schedule
    lr0 = from_dict(c).optimizer.lr
    for r in after:
        e = int(r["epoch"])
        assert float(r["lr"]) == pytest.approx(lr_at(sched, lr0, e * 3 - 1, 9, 3), rel=1e-5)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["finished"] and state["epochs_completed"] == 3
