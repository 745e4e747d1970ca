"""A multi-worker run survives losing a worker: two real workers on 127.0.0.1 train a tiny synthetic
run; once epoch 1 is saved, worker 1 is killed with SIGKILL (as a pre-empted machine is); the chief
stops; both are started again with the same command and continue from epoch 2 in the same run
folder, to the end (issue 12)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _wait_for_epoch(state_glob, root: Path, procs, timeout=420.0) -> Path:
    t0 = time.time()
    while time.time() - t0 < timeout:
        for st in root.glob(state_glob):
            try:
                if json.loads(st.read_text()).get("epochs_completed", 0) >= 1:
                    return st
            except (OSError, ValueError):
                pass  # being replaced: read again
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.5)
    raise AssertionError("epoch 1 was never saved: " + " / ".join(str(p.poll()) for p in procs))


@pytest.mark.slow
def test_killed_worker_and_restart_continue_from_the_next_epoch(tmp_path):
    from landseg.cli.local_cluster import start_workers
    from landseg.data.synthetic import ensure_synthetic_dataset

    data = tmp_path / "synthetic"
    ensure_synthetic_dataset(str(data), n_images=16, size=64)
    args = ["train.epochs=2", "train.steps_per_epoch=3", "model.options.base_width=4", "data.crop_size=32",
            "data.synthetic.n_images=16", "data.synthetic.size=64", "train.num_preview=0", "train.verbose=2",
            f"data.data_dir={data}", f"run.output_dir={tmp_path / 'runs'}", f"run.tensorboard_dir={tmp_path / 'tb'}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}

    def start(tag):
        log = open(tmp_path / f"{tag}.log", "w")
        return start_workers(2, args, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    first = start("first")
    try:
        state_file = _wait_for_epoch("runs/*/state.json", tmp_path, first)
        first[1].kill()  # SIGKILL, from outside
        try:
            first[0].wait(timeout=180)
        except subprocess.TimeoutExpired:  # stuck in a collective with a dead peer: the operator kills it too
            first[0].kill()
            first[0].wait()
    finally:
        for p in first:
            if p.poll() is None:
                p.kill()
    state = json.loads(state_file.read_text())
    assert state["epochs_completed"] == 1 and not state.get("finished")

    again = start("again")
    try:
        codes = [p.wait(timeout=420) for p in again]
    finally:
        for p in again:
            if p.poll() is None:
                p.kill()
    logs = (tmp_path / "again.log").read_text()
    assert codes == [0, 0], logs[-3000:]
    state = json.loads(state_file.read_text())
    assert state["finished"] and state["epochs_completed"] == 2
    assert [h["epoch"] for h in state["history"]] == [1, 2]  # epoch 1 not trained again
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [state_file.parent.name]  # the same run folder
