"""Kill-and-restart check of multi-worker training (issue 12), too slow for the test suite (~3.5 min on 2 busy cores).

Two workers on 127.0.0.1 (landseg.cli.local_cluster.start_workers) train a tiny synthetic run of 3 epochs; once
epoch 1 is saved, worker 1 is killed (the chief then stops on its failed collective); both are started again
and must continue at epoch 2 and finish, in the same run folder. Usage:
    python experiments/multi_worker_resume.py [ROOT]     (logs a0.log / b0.log in ROOT)
"""
import json, os, subprocess, sys, tempfile, time
from pathlib import Path
from landseg.cli.local_cluster import start_workers
from landseg.data.synthetic import ensure_synthetic_dataset
root = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="landseg-mw-resume-"))
root.mkdir(parents=True, exist_ok=True)
ensure_synthetic_dataset(str(root / "syn"), n_images=16, size=64)
args = ["train.epochs=3", "train.steps_per_epoch=4", "model.options.base_width=4", "data.crop_size=32",
        "data.synthetic.n_images=16", "data.synthetic.size=64", "train.num_preview=2",
        f"data.data_dir={root/'syn'}", f"run.output_dir={root/'runs'}", f"run.tensorboard_dir={root/'tb'}"]
env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
def go(tag):
    return start_workers(2, args, env=env, cwd=root, stdout=open(root / f"{tag}0.log", "w"), stderr=subprocess.STDOUT), \
           None
procs, _ = go("a")
# wait for epoch 1 to be checkpointed
t0 = time.time()
while time.time() - t0 < 400:
    st = list((root / "runs").glob("*/state.json"))
    if st:
        s = json.loads(st[0].read_text())
        if s.get("epochs_completed", 0) >= 1:
            break
    time.sleep(0.5)
print("epoch1 done at", round(time.time() - t0), "s; state", s.get("epochs_completed"), flush=True)
procs[1].kill()  # kill one worker
try:
    procs[0].wait(timeout=120)
except subprocess.TimeoutExpired:
    print("chief still waiting on collectives after 120 s: killing it too", flush=True)
    procs[0].kill(); procs[0].wait()
print("after kill: chief exit", procs[0].returncode, "state", json.loads(st[0].read_text())["epochs_completed"], flush=True)
procs, _ = go("b")
codes = [p.wait(timeout=600) for p in procs]
s = json.loads(st[0].read_text())
print("restart exits", codes, "epochs", s["epochs_completed"], "history epochs", [h["epoch"] for h in s["history"]],
      "finished", s.get("finished"), "runs", sorted(p.name for p in (root / "runs").iterdir()), flush=True)
