"""Training-step cost and mapping speed of models as ratios against lite_unet, in one process.

The machine is shared, so absolute times drift with the other jobs; ratios taken back to back
do not (much). One process builds every model (random weights), then, for several rounds,
times lite_unet and each model in turn, alternating: ``train_on_batch`` (SGD, sparse CE) on a
batch of 8 crops of 256² and the mapping call ``landseg.predict`` makes (BatchNorm folded,
``predict_on_batch`` on 4 tiles of 512², its default tile and batch). Each model's first call
of each kind (tracing) is not timed. Ratios are per round (model time / the lite_unet time just
before it), reported as the median over rounds with the min-max range. Appends a section to
experiments/results/models_benchmark.md.

    python experiments/bench_model_ratios.py                 # ~15 min on 2 cores
    python experiments/bench_model_ratios.py --rounds 1 --steps 1 --size 64 --tile 64 --out /tmp/x.md  # smoke test
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
REFERENCE = "lite_unet"
MODELS = ["segformer", "fcn8s", "multires_unet", "multires_unet:base_width=16"]
NUM_CLASSES = 6


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def build(spec: str):
    from bench_models import parse_spec

    from landseg.models import build_model

    name, options = parse_spec(spec)
    return build_model(name, NUM_CLASSES, **options)


def timed(fn, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed calls per model per round")
    p.add_argument("--size", type=int, default=256, help="training crop size")
    p.add_argument("--batch", type=int, default=8, help="training batch")
    p.add_argument("--tile", type=int, default=512, help="mapping tile size")
    p.add_argument("--tile-batch", type=int, default=4)
    p.add_argument("--out", default=str(REPO / "experiments" / "results" / "models_benchmark.md"))
    args = p.parse_args(argv)

    import numpy as np

    import keras
    import landseg  # noqa: F401 - its threading, as every landseg user gets it
    from landseg.models.fold import fold_batchnorm

    load_before = uptime()
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, (args.batch, args.size, args.size)).astype("int32")
    tiles = rng.random((args.tile_batch, args.tile, args.tile, 3), dtype=np.float32)
    specs = [REFERENCE, *args.models]
    models, mapping, params, first = {}, {}, {}, {}
    for spec in specs:
        t = time.perf_counter()
        model = build(spec)
        params[spec] = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        mapping[spec] = fold_batchnorm(model)
        mapping[spec].predict_on_batch(tiles)
        models[spec] = model
        first[spec] = time.perf_counter() - t
        print(f"{spec}: built and traced in {first[spec]:.0f} s", flush=True)

    train_s = {s: [] for s in specs}
    map_s = {s: [] for s in specs}
    ratios = {s: {"train": [], "map": []} for s in args.models}
    for r in range(args.rounds):
        for spec in args.models:
            pair = {}
            for s in (REFERENCE, spec):
                tr = timed(lambda: models[s].train_on_batch(x, y), args.steps)
                mp = timed(lambda: mapping[s].predict_on_batch(tiles), args.steps)
                train_s[s].append(tr)
                map_s[s].append(mp)
                pair[s] = (tr, mp)
            ratios[spec]["train"].append(pair[spec][0] / pair[REFERENCE][0])
            ratios[spec]["map"].append(pair[REFERENCE][1] / pair[spec][1])  # speed ratio: > 1 maps faster
            print(f"round {r + 1} {spec}: train {pair[spec][0]:.2f} s vs {pair[REFERENCE][0]:.2f} s, "
                  f"map {pair[spec][1]:.2f} s vs {pair[REFERENCE][1]:.2f} s", flush=True)
    load_after = uptime()

    def med(v):
        return statistics.median(v)

    tile_px = args.tile_batch * args.tile * args.tile
    rows = []
    for s in specs:
        tr, mp = med(train_s[s]), med(map_s[s])
        if s == REFERENCE:
            rel_t, rel_m = "1 (reference)", "1 (reference)"
        else:
            rt, rm = ratios[s]["train"], ratios[s]["map"]
            rel_t = f"{med(rt):.2f} ({min(rt):.2f}-{max(rt):.2f})"
            rel_m = f"{med(rm):.2f} ({min(rm):.2f}-{max(rm):.2f})"
        rows.append(f"| {s} | {params[s] / 1e6:.2f} | {tr:.2f} | {rel_t} | {tile_px / mp / 1e6:.2f} | {rel_m} | "
                    f"{first[s]:.0f} |")
    command = "python experiments/bench_model_ratios.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = (f"\n## New models against lite_unet (one process, alternating)\n\nCommand: `{command.strip()}`\n\n"
            f"Load: `{load_before}` before, `{load_after}` after (2 cores shared with other jobs). "
            f"Random weights, {NUM_CLASSES} classes. Training: `train_on_batch` (SGD, sparse CE), batch {args.batch} "
            f"of {args.size}²; mapping: BatchNorm folded, `predict_on_batch` on {args.tile_batch} tiles of "
            f"{args.tile}² (`landseg.predict`'s default tile and batch). {args.rounds} rounds x {args.steps} timed "
            f"calls; each round times lite_unet, then the model. Times are medians over rounds; ratios are per round "
            f"(median, min-max). Train cost ratio: model step time / lite_unet's (> 1 = costlier); mapping speed "
            f"ratio: model Mpx/s / lite_unet's (< 1 = slower).\n\n"
            "| model | params (M, trainable) | train step s | train cost vs lite_unet | mapping Mpx/s | "
            "mapping speed vs lite_unet | build + first calls s |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n<details><summary>raw times (s per call, per round)</summary>\n\n```\n"
            + json.dumps({"train_s": train_s, "map_s": map_s, "ratios": ratios}) + "\n```\n</details>\n")
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_models.parse_spec
    sys.exit(main())
