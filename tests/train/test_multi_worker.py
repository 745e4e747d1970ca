"""Multi-worker training (``MultiWorkerMirroredStrategy``): two real worker processes on free 127.0.0.1
ports, started by ``landseg.cli.local_cluster``, train a tiny synthetic run to completion; only the chief
(worker 0) writes the run folder and TensorBoard logs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USUAL = ["best.keras", "last.keras", "config.yaml", "model_info.json", "state.json", "history.csv",
         "per_class_iou.json", "confusion_matrix.png"]


def test_tf_config_and_command():
    from landseg.cli.local_cluster import free_ports, tf_config, worker_command

    ports = free_ports(3)
    assert len(set(ports)) == 3
    c = json.loads(tf_config(ports, 2))
    assert c["task"] == {"type": "worker", "index": 2} and c["cluster"]["worker"][2] == f"127.0.0.1:{ports[2]}"
    assert worker_command(["train.epochs=1"])[-3:] == ["--strategy", "multi_worker", "train.epochs=1"]
    assert worker_command(["train.strategy=multi_worker"])[-1] == "train.strategy=multi_worker"


@pytest.mark.slow
def test_two_workers_on_loopback_train_and_only_the_chief_writes(tmp_path):
    from landseg.cli.local_cluster import start_workers

    out, tb, data = tmp_path / "runs", tmp_path / "tb", tmp_path / "synthetic"
    args = ["train.epochs=2", "train.steps_per_epoch=4", "model.options.base_width=4", "data.crop_size=32",
            "data.synthetic.n_images=16", "data.synthetic.size=64", "train.num_preview=2",
            f"data.data_dir={data}", f"run.output_dir={out}", f"run.tensorboard_dir={tb}"]
    # the synthetic data set is made once, before the workers start (both would otherwise write it)
    from landseg.data.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(str(data), n_images=16, size=64)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    procs = start_workers(2, args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    try:
        logs = [p.communicate(timeout=420)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    text = "\n".join(f"--- worker {i} (exit {p.returncode})\n{log[-3000:]}" for i, (p, log) in enumerate(zip(procs, logs)))
    if any(p.returncode for p in procs) and any(s in text for s in ("failed to connect", "Collective ops",
                                                                    "coordination service", "UNAVAILABLE")):
        pytest.skip("TensorFlow's collective ops could not start between two processes on 127.0.0.1 here:\n" + text)
    assert all(p.returncode == 0 for p in procs), text
    runs = list(out.iterdir())
    assert len(runs) == 1, runs  # one run folder: the chief's
    run = runs[0]
    for f in USUAL:
        assert (run / f).is_file(), f"{f} missing in {run}: {sorted(os.listdir(run))}"
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_completed"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert all(0 <= h["val_miou"] <= 1 for h in state["history"])
    assert [d.name for d in tb.iterdir()] == [run.name]  # TensorBoard: the chief's only
    assert not list(tmp_path.glob("landseg-worker-*"))  # the other worker's temporary folder is removed
    assert "over 2 replicas" in logs[0]


def test_a_lost_worker_is_one_line_with_how_to_resume():
    from landseg.cli.common import describe
    from landseg.training.fit import WorkerLost

    line, hint, code = describe(WorkerLost("another worker of the multi-worker run stopped (...); 1 epoch(s) are saved"))
    assert "another worker" in line and "start every worker again" in hint and code == 1
