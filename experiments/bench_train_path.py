"""Where the command-line training path spends its time, next to the network's own fit rate.

Two fresh processes per repeat, one after another:

* ``train``: landseg's training (``run_training``, what ``python -m landseg.train`` runs after
  parsing its arguments) on the synthetic dataset with a phase timer as an extra callback:
  per epoch the training phase (first batch .. last batch), validation, the epoch-end
  callbacks (checkpoints, plots, TensorBoard) and the cores used in each phase.
* ``fit``: the same model, crop and batch fitted on in-memory batches (bench_threads' worker; by default
  through ``landseg.data.from_arrays``, ``--fit-inputs numpy`` hands Keras the arrays).

The ratio of interest is the training phase's img/s (steady epochs, from the second on) and the
whole steady epoch's img/s over the in-memory fit rate.

    python experiments/bench_train_path.py --model unet --crop 128 --batch 8 --steps 40 --epochs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_worker(args) -> dict:
    import landseg  # noqa: F401
    import keras

    from landseg.training import run_training

    class PhaseTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows, self.marks = [], {}

        def _mark(self, name):
            self.marks[name] = (time.perf_counter(), _cpu())

        def on_epoch_begin(self, epoch, logs=None):
            if "end" in self.marks and self.rows:
                self.rows[-1]["between_s"] = time.perf_counter() - self.marks["end"][0]
            self._mark("begin")

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self._mark("first")

        def on_test_begin(self, logs=None):
            self._mark("val")

        def on_test_end(self, logs=None):
            self._mark("val_end")

        def on_epoch_end(self, epoch, logs=None):  # runs after landseg's own callbacks (appended last)
            self._mark("end")
            m = self.marks
            span = lambda a, b: (m[b][0] - m[a][0], m[b][1] - m[a][1])  # noqa: E731
            train_s, train_cpu = span("first", "val")
            val_s, val_cpu = span("val", "val_end")
            cb_s, _ = span("val_end", "end")
            self.rows.append({"epoch": epoch + 1, "first_batch_wait_s": m["first"][0] - m["begin"][0],
                              "train_s": train_s, "train_cores": train_cpu / train_s, "val_s": val_s,
                              "val_cores": val_cpu / max(val_s, 1e-9), "epoch_end_callbacks_s": cb_s,
                              "epoch_s": m["end"][0] - m["begin"][0]})

    timer = PhaseTimer()
    out = tempfile.mkdtemp(prefix="landseg-bench-")
    config = {"run": {"output_dir": out, "tensorboard_dir": os.path.join(out, "tb"), "resume": "never",
                      "name": "bench"},
              "data": {"crop_size": args.crop, "data_dir": args.data_dir},
              "model": {"name": args.model, "options": json.loads(args.options)},
              "train": {"epochs": args.epochs, "batch_size": args.batch, "steps_per_epoch": args.steps,
                        "verbose": args.verbose, "mixed_precision": args.mixed_precision}}
    if args.config_json:
        from landseg.config import default_config, merge

        config = merge(config, json.loads(args.config_json), schema=default_config())
    run_training(config, callbacks=[timer])
    import tensorflow as tf

    return {"rows": timer.rows, "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads()}


def run(cmd, env=None) -> dict:
    e = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    p = subprocess.run(cmd, capture_output=True, text=True, env=e)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="unet")
    p.add_argument("--options", default="{}", help="model options as JSON")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--verbose", type=int, default=2)
    p.add_argument("--mixed-precision", default=False, type=lambda s: s if s not in ("0", "false") else False)
    p.add_argument("--data-dir", default=str(REPO / "data" / "synthetic"))
    p.add_argument("--config-json", default=None, help="extra config (JSON) merged over the bench's")
    p.add_argument("--skip-fit", action="store_true")
    p.add_argument("--fit-inputs", default="from_arrays", choices=["from_arrays", "numpy"])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(train_worker(args)))
        return 0
    print(f"# {' '.join(sys.argv)}\n# load avg at start: {os.getloadavg()}", flush=True)
    images = args.steps * args.batch
    for rep in range(args.repeats):
        load = os.getloadavg()[0]
        t = time.time()
        res = run([sys.executable, __file__, "--worker", *[a for a in (argv or sys.argv[1:]) if a != "--worker"]])
        steady = res["rows"][1:] or res["rows"]
        tr = statistics.mean(images / r["train_s"] for r in steady)
        ep = statistics.mean(images / r["epoch_s"] for r in steady)
        print(json.dumps({"repeat": rep + 1, "what": "train", "load1": load, "wall_s": time.time() - t,
                          "train_phase_img_s": tr, "epoch_img_s": ep, **res}), flush=True)
        if not args.skip_fit:
            load = os.getloadavg()[0]
            f = run([sys.executable, str(REPO / "experiments" / "bench_threads.py"), "--worker", args.model,
                     "--size", str(args.crop), "--batch", str(args.batch), "--images", str(images),
                     "--options", args.options, "--inputs", args.fit_inputs])
            print(json.dumps({"repeat": rep + 1, "what": "fit", "load1": load, **f,
                              "train_phase_ratio": tr / f["img_s"], "epoch_ratio": ep / f["img_s"]}), flush=True)
    print(f"# load avg at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
