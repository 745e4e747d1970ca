"""Benchmark every registered model on this CPU beside segmentation-models' Unet('resnet34').

Measures, per model and per jit_compile setting, each in its own subprocess (so ru_maxrss is
that model's peak): training-step and inference throughput (images/s), FLOPs per image (TF
profiler on the frozen inference graph: Conv2D & co. count 2 FLOPs per multiply-add) and the
achieved GFLOP/s (inference: forward FLOPs x img/s; training: 3 x forward FLOPs x img/s, the
usual forward + 2x backward estimate). Writes a markdown table.

    python experiments/bench_models.py --jit-models "sm.Unet(resnet34)" cse_unet --jit-timeout 300  # ~30 min
    python experiments/bench_models.py --models cse_unet --size 64 --batch 2 --steps 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = "sm.Unet(resnet34)"
MODELS = [REFERENCE, "cse_unet", "unet", "linknet", "fpn", "deeplabv3_resnet50"]
NUM_CLASSES = 6


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def parse_spec(spec: str) -> tuple[str, dict]:
    """``cse_unet:base_width=16,dropout=0`` -> ("cse_unet", {"base_width": 16, "dropout": 0})."""
    name, _, opts = spec.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value[:1] in "-0123456789[{tfn" else value
    return name, options


def build(spec: str):
    """The model under test; the reference is sm.Unet exactly as its README builds it."""
    if spec == REFERENCE:
        from landseg.models.sm_models import import_sm

        return import_sm().Unet("resnet34", encoder_weights=None, classes=NUM_CLASSES, activation="softmax")
    from landseg.models import build_model

    name, options = parse_spec(spec)
    return build_model(name, NUM_CLASSES, **options)


def forward_flops(model, size: int, bands: int = 3) -> int:
    """Total float ops of one image's forward pass, from the TF profiler on the frozen graph."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([1, size, size, bands])))
    opts = tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
    opts = opts.with_empty_output().build()
    prof = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=opts)
    return int(prof.total_float_ops)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, warmup: int, steps: int) -> tuple[float, float, float]:
    """(seconds of the first call incl. tracing/compiling, mean seconds per later call, cores used in them)."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    for _ in range(warmup):
        fn()
    t, c = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        fn()
    wall = time.perf_counter() - t
    return first, wall / steps, (cpu_seconds() - c) / wall


def worker(name: str, jit: bool, size: int, batch: int, warmup: int, steps: int, precision: str = "float32") -> dict:
    import numpy as np

    import keras

    import landseg  # noqa: F401 - its threading, as every landseg user gets it
    import tensorflow as tf

    if precision != "float32":
        keras.mixed_precision.set_global_policy(precision)
    base = rss_mib()
    model = build(name)
    flops = forward_flops(model, size)
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, (batch, size, size)).astype("int32")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    infer_first, infer_s, infer_cores = timed(lambda: model.predict_on_batch(x), warmup, steps)
    train_first, train_s, train_cores = timed(lambda: model.train_on_batch(x, y), warmup, steps)
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {"model": name, "jit": jit, "precision": precision, "params": params, "gflops_per_image": flops / 1e9,
            "train_mpx_s": batch * size * size / train_s / 1e6, "infer_mpx_s": batch * size * size / infer_s / 1e6,
            "train_cores": train_cores, "infer_cores": infer_cores,
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "infer_img_s": batch / infer_s, "train_img_s": batch / train_s,
            "infer_gflop_s": flops / 1e9 * batch / infer_s, "train_gflop_s": 3 * flops / 1e9 * batch / train_s,
            "infer_first_s": infer_first, "train_first_s": train_first,
            "rss_after_import_mib": base, "peak_rss_mib": rss_mib()}


def run_worker(args, name: str, jit: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--jit", str(int(jit)), "--size", str(args.size),
           "--batch", str(args.batch), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--precision", args.precision]
    from bench_threads import setting_env  # threading variables of the chosen setting only

    env = {**setting_env(args.threads), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
           "SM_FRAMEWORK": "tf.keras"}
    t = time.time()
    limit = args.jit_timeout if jit else None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"model": name, "jit": jit, "error": f"not finished within {limit} s (killed; XLA compile + steps)"}
    if proc.returncode:
        return {"model": name, "jit": jit, "error": proc.stderr.strip().splitlines()[-1][:300]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.time() - t
    return res


def table(results: list[dict]) -> str:
    head = ("| model | jit | precision | params (M) | GFLOP/img | train img/s | infer img/s | train GFLOP/s "
            "| infer GFLOP/s | train Mpx/s | infer Mpx/s | cores train / infer | 1st train step s | peak RSS MiB |"
            "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in results:
        if "error" in r:
            rows.append(f"| {r['model']} | {'on' if r['jit'] else 'off'} | error: {r['error']} |||||||||||| |")
            continue
        rows.append(f"| {r['model']} | {'on' if r['jit'] else 'off'} | {r.get('precision', 'float32')} | "
                    f"{r['params'] / 1e6:.2f} | "
                    f"{r['gflops_per_image']:.2f} | {r['train_img_s']:.2f} | {r['infer_img_s']:.2f} | "
                    f"{r['train_gflop_s']:.1f} | {r['infer_gflop_s']:.1f} | {r.get('train_mpx_s', 0):.3f} | "
                    f"{r.get('infer_mpx_s', 0):.3f} | {r.get('train_cores', 0):.2f} / {r.get('infer_cores', 0):.2f} | "
                    f"{r['train_first_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join([head, *rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--jit", choices=["off", "on", "both", "0", "1"], default="both")
    p.add_argument("--jit-models", nargs="+", default=None,
                   help="with --jit both: models also run with jit_compile=True (default: all)")
    p.add_argument("--jit-timeout", type=float, default=None, help="seconds allowed per jit_compile=True worker")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=0, help="untimed calls after the first (tracing) call")
    p.add_argument("--steps", type=int, default=2, help="timed calls")
    p.add_argument("--precision", default="float32", help="keras dtype policy: float32 | mixed_bfloat16")
    p.add_argument("--threads", default="landseg",
                   help="threading setting as in bench_threads.py: landseg (import landseg's choice) | tf | IxJ")
    p.add_argument("--out", default=str(REPO / "experiments" / "results" / "models_benchmark.md"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.jit == "1", args.size, args.batch, args.warmup, args.steps,
                                args.precision)))
        return 0

    modes = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    load_before = os.getloadavg()
    results = []
    for name in args.models:
        for jit in modes:
            if jit and args.jit == "both" and args.jit_models is not None and name not in args.jit_models:
                continue
            r = run_worker(args, name, jit)
            print(json.dumps(r), flush=True)
            results.append(r)
    load_after = os.getloadavg()

    from landseg.io_utils import write_text

    command = "python experiments/bench_models.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = (f"# Models benchmark (CPU)\n\nCommand: `{command.strip()}`\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after (other jobs share the cores). "
            f"Input {args.size}x{args.size}x3, batch {args.batch}, {NUM_CLASSES} classes; each row is its own "
            f"process: 1 tracing call + {args.warmup} warm-up + {args.steps} timed calls of `train_on_batch` "
            f"(SGD, sparse CE) and `predict_on_batch`; threading setting `{args.threads}` (see bench_threads.py), "
            f"dtype policy {args.precision}. Mpx/s = img/s x {args.size}^2 / 1e6; cores = process CPU time / wall "
            "in the timed calls.\n\n"
            "FLOPs: TF profiler (`tf.compat.v1.profiler`, float_operation) on the frozen batch-1 inference "
            "graph; a multiply-add counts 2. Training GFLOP/s uses 3x forward FLOPs. Peak RSS = the worker "
            "process's ru_maxrss (includes TensorFlow itself, about the 'after import' figure in the JSON).\n\n"
            f"{table(results)}\n\n<details><summary>raw results</summary>\n\n```\n"
            + "\n".join(json.dumps(r) for r in results) + "\n```\n</details>\n")
    write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
