"""Threading benchmark: N identical processes started one after another, settings alternating.

Each worker process does what a notebook user does: ``import landseg``, ``build_model(name)``,
``compile`` and ``fit`` on in-memory batches, and reports the training rate (img/s) and the cores
it used during the timed ``fit`` (process CPU time user+sys / wall). Before timing, one short ``fit``
traces the step (not counted).

Inputs (``--inputs``): ``numpy`` hands the arrays to ``fit`` (Keras builds its own tf.data pipeline,
model-based autotuner on); ``from_arrays`` passes ``landseg.data.from_arrays(x, y, batch)`` (the same
arrays, autotuner off), what the README tells library users to do.

Settings (``--settings``), each a set of environment variables for the worker:

* ``landseg``  no threading variables at all: landseg's own choice at ``import landseg``
* ``tf``       TensorFlow's defaults (``LANDSEG_*_OP_THREADS=tf``: what landseg did before)
* ``IxJ``      ``LANDSEG_INTRA_OP_THREADS=I LANDSEG_INTER_OP_THREADS=J``, e.g. ``2x2``, ``1x1``
* ``+omp1`` / ``+onednn0`` suffixes add ``OMP_NUM_THREADS=1`` / ``TF_ENABLE_ONEDNN_OPTS=0``

    python experiments/bench_threads.py --models unet lite_unet --settings landseg tf --runs 6
    python experiments/bench_threads.py --models unet --settings landseg --inputs from_arrays numpy --runs 6
    python experiments/bench_threads.py --models "sm.Unet(resnet34)" unet lite_unet --runs 4   # vs the reference

``sm.Unet(resnet34)`` is segmentation-models' own ``Unet("resnet34")`` as its README builds it (after
``import landseg``, so it gets landseg's threading too): the reference the landseg models are measured by.
    python experiments/bench_threads.py --models cse_unet --size 64 --images 8 --runs 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 6
REFERENCE = "sm.Unet(resnet34)"
THREAD_VARS = ("LANDSEG_INTRA_OP_THREADS", "LANDSEG_INTER_OP_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS", "MKL_NUM_THREADS")


def setting_env(setting: str) -> dict:
    """Environment of a worker for ``setting`` (every threading variable of the parent removed)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update({"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "SM_FRAMEWORK": "tf.keras"})
    base, *extras = setting.split("+")
    if base == "tf":
        env["LANDSEG_INTRA_OP_THREADS"] = env["LANDSEG_INTER_OP_THREADS"] = "tf"
    elif "x" in base:
        intra, inter = base.split("x")
        env["LANDSEG_INTRA_OP_THREADS"], env["LANDSEG_INTER_OP_THREADS"] = intra, inter
    elif base != "landseg":
        raise SystemExit(f"unknown setting {setting!r}")
    for extra in extras:
        if extra == "omp1":
            env["OMP_NUM_THREADS"] = "1"
        elif extra == "onednn0":
            env["TF_ENABLE_ONEDNN_OPTS"] = "0"
        else:
            raise SystemExit(f"unknown setting suffix {extra!r}")
    return env


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(name: str, size: int, batch: int, images: int, options: dict, precision: str, inputs: str) -> dict:
    t0 = time.perf_counter()
    import landseg  # noqa: F401 - what a user does first
    import numpy as np

    import keras
    import tensorflow as tf
    from landseg.data import from_arrays
    from landseg.models import build_model

    if precision != "float32":
        keras.mixed_precision.set_global_policy(precision)
    if name == REFERENCE:
        from landseg.models.sm_models import import_sm

        model = import_sm().Unet("resnet34", input_shape=(size, size, 3), classes=NUM_CLASSES, encoder_weights=None,
                                 activation="softmax")
    else:
        model = build_model(name, NUM_CLASSES, input_shape=(size, size, 3), **options)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((images, size, size, 3), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, (images, size, size)).astype("int32")

    def fit(n: int):
        if inputs == "numpy":
            model.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        else:
            model.fit(from_arrays(x[:n], y[:n], batch), epochs=1, verbose=0)

    fit(2 * batch)  # traces the step for this kind of input
    setup_s = time.perf_counter() - t0
    c, t = cpu_seconds(), time.perf_counter()
    fit(images)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    return {"model": name, "inputs": inputs, "img_s": images / wall, "cores": cpu / wall, "fit_s": wall, "setup_s": setup_s,
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "env_intra": os.environ.get("TF_NUM_INTRAOP_THREADS"), "env_inter": os.environ.get("TF_NUM_INTEROP_THREADS")}


def run_one(args, model: str, setting: str, inputs: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", model, "--size", str(args.size), "--batch", str(args.batch),
           "--images", str(args.images), "--precision", args.precision,
           "--options", json.dumps(args.model_options.get(model, {})), "--inputs", inputs]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=setting_env(setting))
    if proc.returncode:
        return {"model": model, "setting": setting, "inputs": inputs, "load1": load,
                "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(setting=setting, load1=load)
    return res


def summary(results: list[dict], models, settings, inputs) -> str:
    lines = ["| model | setting | input | runs | img/s per run (in start order) | mean | min-max | cores used in `fit` per run "
             "| min cores | TF intra/inter | load avg (1 min) at starts |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, s, i in ((m, s, i) for m in models for s in settings for i in inputs):
        rs = [r for r in results if (r["model"], r["setting"], r.get("inputs", "numpy")) == (m, s, i)]
        ok = [r for r in rs if "error" not in r]
        if not ok:
            lines.append(f"| {m} | {s} | {i} | {len(rs)} | error: {rs[0].get('error') if rs else '-'} |||||||")
            continue
        ips, cores, loads = [r["img_s"] for r in ok], [r["cores"] for r in ok], [r["load1"] for r in ok]
        lines.append(
            f"| {m} | {s} | {i} | {len(ok)} | {', '.join(f'{v:.2f}' for v in ips)} | {statistics.mean(ips):.2f} | "
            f"{min(ips):.2f}-{max(ips):.2f} | {', '.join(f'{v:.2f}' for v in cores)} | {min(cores):.2f} | "
            f"{ok[0]['intra']}/{ok[0]['inter']} | {', '.join(f'{v:.1f}' for v in loads)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["unet", "lite_unet"])
    p.add_argument("--settings", nargs="+", default=["landseg", "tf"])
    p.add_argument("--inputs", nargs="+", default=["numpy"], choices=["numpy", "from_arrays"],
                   help="how fit gets the in-memory batches (alternated like the settings)")
    p.add_argument("--runs", type=int, default=6, help="processes per (model, setting)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--images", type=int, default=64, help="images in the timed fit (one epoch)")
    p.add_argument("--precision", default="float32", help="keras dtype policy: float32 | mixed_bfloat16")
    p.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--model-options", type=json.loads, default={},
                   help='JSON {model: build_model options}, e.g. \'{"cse_unet": {"base_width": 16}}\'')
    p.add_argument("--jsonl", default=None, help="append each run's result to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.batch, args.images, json.loads(args.options),
                                args.precision, args.inputs[0])))
        return 0
    results = []
    print(f"# {' '.join(sys.argv)}\n# load avg at start: {os.getloadavg()}", flush=True)
    for i in range(args.runs):
        for model in args.models:
            for setting, inputs in ((s, i) for s in args.settings for i in args.inputs):  # alternate run by run
                r = run_one(args, model, setting, inputs)
                r["run"] = i + 1
                results.append(r)
                print(json.dumps(r), flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(r) + "\n")
    print(f"# load avg at end: {os.getloadavg()}\n")
    print(summary(results, args.models, args.settings, args.inputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
