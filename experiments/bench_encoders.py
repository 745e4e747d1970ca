"""Cost of each encoder-table encoder under lite_unet and deeplabv3plus, as ratios to lite_unet on
EfficientNet-Lite0 measured in the same process.

Why one process with alternating repeats: the machine is shared, and its load drifts over minutes;
timing every model once per round, in turn, and taking each round's ratio to the reference keeps a
slow minute from landing on one model only. Per model: forward time per 256² crop (``predict_on_batch``
of 8 crops / 8), one training step of batch 8 at 256² (``train_on_batch``, Adam, sparse CE),
parameters, and GMAC per crop (TF profiler's float operations on the frozen batch-1 graph / 2).
Pretrained encoders are loaded where their package is installed (frozen BatchNorm statistics change
the training step's cost); ResNet50 is random (its ImageNet file is not in the Keras cache here).

    python experiments/bench_encoders.py                     # ~25 min on 2 cores
    python experiments/bench_encoders.py --size 64 --repeats 1 --models lite_unet:efficientnet_lite0 \\
        deeplabv3plus:mobilenet_v2 --out /tmp/b.md          # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
REFERENCE = "lite_unet:efficientnet_lite0"
MODELS = [REFERENCE, "lite_unet:efficientnet_lite1", "lite_unet:efficientnet_lite2", "lite_unet:mobilenet_v2",
          "lite_unet:resnet50", "lite_unet:resnet18_geoembed", "lite_unet:resnet18_geoembed:input_downsample=2",
          "lite_unet:resnet18_geoembed:input_downsample=4", "deeplabv3plus:efficientnet_lite0",
          "deeplabv3plus:mobilenet_v2", "deeplabv3plus:resnet50"]
NUM_CLASSES = 6


def parse(spec: str) -> tuple[str, dict]:
    """``lite_unet:resnet18_geoembed:input_downsample=2`` -> ("lite_unet", {"encoder": ..., "input_downsample": 2})."""
    name, encoder, *rest = spec.split(":")
    options = {"encoder": encoder}
    for item in rest:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    return name, options


def build(spec: str):
    from landseg.models import build_model
    from landseg.models.encoders import PretrainedPackageMissing, get_encoder

    name, options = parse(spec)
    enc = get_encoder(options["encoder"])
    weights = enc.weights[0] if enc.weights[0] != "imagenet-resnet50" else None
    try:
        return build_model(name, NUM_CLASSES, encoder_weights=weights, **options), weights
    except PretrainedPackageMissing:
        return build_model(name, NUM_CLASSES, **options), None


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="rounds; each times every model once, in turn")
    p.add_argument("--out", default=str(REPO / "experiments" / "results" / "encoders_benchmark.md"))
    args = p.parse_args(argv)
    models = [REFERENCE] + [m for m in args.models if m != REFERENCE]

    import numpy as np

    import keras
    import landseg  # noqa: F401  (its threading, as every landseg user gets it)
    from bench_models import forward_flops

    load_before = uptime()
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, (args.batch, args.size, args.size)).astype("int32")
    built = {}
    for spec in models:
        model, weights = build(spec)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
        model.predict_on_batch(x)  # trace both functions before any timing
        model.train_on_batch(x, y)
        built[spec] = {"model": model, "weights": weights, "params": model.count_params(),
                       "gmac": forward_flops(model, args.size) / 2e9}
        print(spec, "built", flush=True)
    times = {spec: {"forward": [], "train": []} for spec in models}
    for r in range(args.repeats):
        order = models if r % 2 == 0 else models[::-1]  # alternate the order too
        for spec in order:
            m = built[spec]["model"]
            t = time.perf_counter()
            m.predict_on_batch(x)
            times[spec]["forward"].append((time.perf_counter() - t) / args.batch)
            t = time.perf_counter()
            m.train_on_batch(x, y)
            times[spec]["train"].append(time.perf_counter() - t)
        print(f"round {r + 1} done: {uptime()}", flush=True)
    load_after = uptime()

    ref = times[REFERENCE]
    rows = []
    for spec in models:
        t = times[spec]
        ratio = {k: statistics.median(a / b for a, b in zip(t[k], ref[k])) for k in ("forward", "train")}
        rows.append(f"| {spec.replace(':', ' / ', 1).replace(':', ', ')} | {built[spec]['weights'] or 'random'} | "
                    f"{built[spec]['params'] / 1e6:.2f} | {built[spec]['gmac']:.2f} | "
                    f"{statistics.median(t['forward']) * 1e3:.0f} | {ratio['forward']:.2f} | "
                    f"{statistics.median(t['train']):.2f} | {ratio['train']:.2f} |")
    command = "python experiments/bench_encoders.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = (f"# Encoders benchmark (CPU)\n\nCommand: `{command.strip()}`\n\n"
            f"Machine: {os.cpu_count()} cores, shared with other jobs. `uptime` before: `{load_before}`; "
            f"after: `{load_after}`.\n\n"
            f"One process; every model is built, compiled (Adam, sparse CE) and traced first, then timed once per "
            f"round in turn for {args.repeats} rounds (order reversed every other round). Ratios are the median "
            f"over rounds of (model / lite_unet-Lite0 in the same round). Forward: `predict_on_batch` of "
            f"{args.batch} crops of {args.size}x{args.size}x3, divided by {args.batch}; train: one "
            f"`train_on_batch` of {args.batch} crops. GMAC: TF profiler float operations of one crop's frozen "
            "inference graph / 2. Params: all weights (incl. BatchNorm statistics). deeplabv3plus: ASPP width "
            "256 (its default).\n\n"
            "| model / encoder | weights | params (M) | GMAC / crop | forward ms / crop | forward ratio | "
            "train step s (batch 8) | train ratio |\n|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n<details><summary>raw seconds per round</summary>\n\n```\n"
            + "\n".join(json.dumps({"model": s, **times[s]}) for s in models) + "\n```\n</details>\n")
    from landseg.io_utils import write_text

    write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
