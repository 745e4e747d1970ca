"""Does a two-worker run learn what a single worker learns? (issue 12)

Trains the built-in default run (synthetic data, CSE-UNet, 16 epochs x 40 steps, global batch 8,
seed 0) twice in this command: once as one process, once as two workers on 127.0.0.1 with
``MultiWorkerMirroredStrategy`` (``train.batch_size`` is the global batch: 8, split 4 + 4), and prints
each run's final and best validation mIoU, wall time and the difference.

    python experiments/multi_worker_parity.py [ROOT] [extra overrides ...]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from landseg.cli.local_cluster import start_workers
from landseg.data.synthetic import ensure_synthetic_dataset


def _result(run: Path, wall: float) -> dict:
    s = json.loads((run / "state.json").read_text())
    h = s["history"]
    return {"run": run.name, "epochs": s["epochs_completed"], "final_val_miou": round(h[-1]["val_miou"], 4),
            "best_val_miou": round(max(r["val_miou"] for r in h), 4), "wall_s": round(wall, 1)}


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="landseg-parity-"))
    extra = sys.argv[2:]
    root.mkdir(parents=True, exist_ok=True)
    data = root / "synthetic"
    ensure_synthetic_dataset(str(data))  # the default's 64 images of 128 px, made once for both runs
    common = [f"data.data_dir={data}", f"run.output_dir={root / 'runs'}", f"run.tensorboard_dir={root / 'tb'}",
              "train.verbose=2", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    t0 = time.time()
    with open(root / "single.log", "w") as log:
        subprocess.run([sys.executable, "-m", "landseg.train", "run.name=single", *common], env=env, check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    single = _result(root / "runs" / "single", time.time() - t0)
    print(json.dumps(single), flush=True)

    t0 = time.time()
    with open(root / "two_workers.log", "w") as log:
        procs = start_workers(2, ["run.name=two_workers", *common], env=env, cwd=root,
                              stdout=log, stderr=subprocess.STDOUT)
        codes = [p.wait() for p in procs]
    if codes != [0, 0]:
        sys.exit(f"workers exited {codes}; see {root / 'two_workers.log'}")
    multi = _result(root / "runs" / "two_workers", time.time() - t0)
    print(json.dumps(multi), flush=True)
    print(f"final val mIoU difference (two workers - single): {multi['final_val_miou'] - single['final_val_miou']:+.4f}; "
          f"best: {multi['best_val_miou'] - single['best_val_miou']:+.4f}")


if __name__ == "__main__":
    main()
