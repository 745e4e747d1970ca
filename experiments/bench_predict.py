"""Benchmark whole-scene prediction: throughput, peak memory and the cost of tiling/blending/TTA.

    python experiments/bench_predict.py [--scales 1 2 4] [--tta flips] [--base-width 4] [--out experiments/results/predict_benchmark.md]

Scenes of 1x, 2x and 4x the area of a DeepGlobe tile (2448^2 px) are built by mirroring
real DeepGlobe images (../shared/data/deepglobe/train) side by side, or synthetic scenes
if that folder is absent. Each scene size runs in a fresh subprocess (so peak memory is
that size's alone) with a two-model ensemble of small CSE-UNets (random weights: speed and
memory do not depend on training) through :class:`landseg.inference.Predictor`.

Measured, per size:
* megapixels of scene per second (end to end: tiling, preprocessing, models, TTA, blending);
* model time: the wall time spent inside ``model.predict_on_batch`` on the very tile batches
  of that run; bookkeeping overhead = (total - model time) / model time. At 1x the models are
  also timed again alone on the same (re-extracted, pre-transformed) batches as a check;
* peak memory: the process's peak RSS (``resource.getrusage().ru_maxrss``) after the scene
  is predicted, the peak RSS before the scene is loaded (TF + models + warm-up), and the
  peak of numpy/Python allocations during ``predict_scene`` (tracemalloc; TF's own buffers
  are not in it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEEPGLOBE = ROOT.parent / "shared" / "data" / "deepglobe" / "train"
BASE_SIDE = 2448


def build_scene(scale: float) -> tuple[np.ndarray, str]:
    side = int(round(BASE_SIDE * np.sqrt(scale)))
    if DEEPGLOBE.is_dir():
        from landseg.data.io import read_image

        paths = sorted(DEEPGLOBE.glob("*_sat.jpg"))
        n = int(np.ceil(side / BASE_SIDE))
        rows = []
        for i in range(n):
            row = []
            for j in range(n):
                img = read_image(paths[(i * n + j) % len(paths)])
                if j % 2:
                    img = img[:, ::-1]  # mirror so neighbouring images meet edge to edge
                if i % 2:
                    img = img[::-1]
                row.append(img)
            rows.append(np.concatenate(row, axis=1))
        scene = np.ascontiguousarray(np.concatenate(rows, axis=0)[:side, :side])
        return scene, f"DeepGlobe train images mirrored side by side ({n}x{n}), cropped"
    from landseg.data.synthetic import generate_scene

    img, _ = generate_scene(0, 512)
    reps = int(np.ceil(side / 512))
    return np.ascontiguousarray(np.tile(img, (reps, reps, 1))[:side, :side]), "synthetic scene tiled"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def child(args) -> dict:
    import tracemalloc

    from landseg.inference import ModelEntry, Predictor, make_grid, prepare
    from landseg.models import build_model, get_model_spec

    import keras

    entries = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        m = build_model("cse_unet", 7, base_width=args.base_width)
        entries.append(ModelEntry(m, 1.0, f"cse_unet(base_width={args.base_width}, seed={seed})",
                                  size_multiple=get_model_spec("cse_unet").multiple(base_width=args.base_width)))
    pred = Predictor(entries, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, tta=args.tta)
    # warm-up: trace the full and the partial batch shapes once, outside the measurement
    warm = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    pred.predict_scene(warm)
    params = sum(e.model.count_params() for e in entries)
    rss_before_scene = rss_mb()

    scene, source = build_scene(args.scale)
    H, W = scene.shape[:2]
    from landseg.inference import Timing

    pred.timing = Timing()
    tracemalloc.start()
    t0 = time.perf_counter()
    res = pred.predict_scene(scene)
    total = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = rss_mb()
    out = {
        "scale": args.scale, "height": H, "width": W, "megapixels": H * W / 1e6, "source": source,
        "tiles": res.num_tiles, "tta": args.tta, "transforms": len(pred.transforms), "models": [e.name for e in entries],
        "params_total": int(params), "tile": pred.tile, "overlap": pred.overlap, "batch_size": pred.batch_size,
        "total_s": total, "model_s": pred.timing.model_s, "model_calls": pred.timing.model_calls,
        "mp_per_s": H * W / 1e6 / total, "overhead_pct": 100.0 * (total - pred.timing.model_s) / pred.timing.model_s,
        "rss_before_scene_mb": rss_before_scene, "peak_rss_mb": rss_after, "tracemalloc_peak_mb": traced_peak / 2**20,
        "scene_mb": scene.nbytes / 2**20,
    }
    if args.separate_model_pass:
        # the models alone on the same tile batches (extraction/transforms done outside the timer)
        grid = make_grid(H, W, pred.tile, pred.overlap, pred.size_multiple)
        starts = list(grid.tiles())
        t_models = 0.0
        for b in range(0, len(starts), pred.batch_size):
            chunk = starts[b : b + pred.batch_size]
            batch = prepare(np.stack([scene[y : y + grid.tile_h, x : x + grid.tile_w] for y, x in chunk]))
            for t in pred.transforms:
                tb = t.forward(batch)
                for e in entries:
                    t1 = time.perf_counter()
                    e.model.predict_on_batch(tb)
                    t_models += time.perf_counter() - t1
        out["models_alone_s"] = t_models
        out["overhead_vs_alone_pct"] = 100.0 * (total - t_models) / t_models
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scales", type=float, nargs="+", default=[1, 2, 4])
    p.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tta", default="flips", help="none | flips (4 transforms) | d4 (8)")
    p.add_argument("--base-width", type=int, default=4, help="CSE-UNet width of both ensemble members")
    p.add_argument("--separate-model-pass", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--check-scales", type=float, nargs="*", default=[1], help="scales that also time the models alone in a second pass")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "predict_benchmark.md"))
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0

    results = []
    for s in args.scales:
        cmd = [sys.executable, __file__, "--child", "--scale", str(s), "--tile", str(args.tile), "--overlap", str(args.overlap),
               "--batch-size", str(args.batch_size), "--tta", args.tta, "--base-width", str(args.base_width)]
        if s in args.check_scales:
            cmd.append("--separate-model-pass")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
        print(f"scale {s}x ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        r = json.loads(line[0][7:])
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    write_report(args, results)
    return 0


def write_report(args, results) -> None:
    from landseg.io_utils import write_json, write_text

    base = results[0]
    cmd = "python experiments/bench_predict.py " + " ".join(
        [f"--scales {' '.join(str(s) for s in args.scales)}", f"--tile {args.tile}", f"--overlap {args.overlap}",
         f"--batch-size {args.batch_size}", f"--tta {args.tta}", f"--base-width {args.base_width}"])
    lines = [
        "# Whole-scene prediction benchmark", "",
        f"Command (from the repo root): `{cmd}`", "",
        f"- ensemble: {', '.join(base['models'])} ({base['params_total']:,} parameters together), random weights",
        f"- scenes: {base['source']}",
        f"- tiles {base['tile']} px, overlap {base['overlap']}, batch {base['batch_size']} tiles, TTA `{base['tta']}` "
        f"({base['transforms']} transforms) -> {base['transforms'] * len(base['models'])} model passes per tile",
        f"- machine: {os.cpu_count()} CPU cores, no GPU; other jobs were running on the same cores, so absolute "
        "times are noisy (the overhead is a ratio measured within each run)",
        "- each size runs in a fresh subprocess; peak RSS = `ru_maxrss` at the end (whole process: TF, models, "
        "scene, outputs); 'before scene' = peak RSS after building the models and a warm-up prediction; "
        "tracemalloc = peak numpy/Python allocations inside `predict_scene` (TF's own buffers are not included)",
        "",
        "| area | scene | tiles | total s | MP/s | model s | overhead % | peak RSS MB | before scene MB | tracemalloc peak MB | scene uint8 MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['scale']:g}x | {r['width']}x{r['height']} | {r['tiles']} | {r['total_s']:.1f} | {r['mp_per_s']:.3f} | "
                     f"{r['model_s']:.1f} | {r['overhead_pct']:.1f} | {r['peak_rss_mb']:.0f} | {r['rss_before_scene_mb']:.0f} | "
                     f"{r['tracemalloc_peak_mb']:.0f} | {r['scene_mb']:.0f} |")
    lines.append("")
    by = {r["scale"]: r for r in results}
    if 1.0 in by and 4.0 in by:
        a, b = by[1.0], by[4.0]
        ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
        lines += [f"- peak RSS 4x / 1x: **{ratio:.2f}x** (target < 1.5x) -> {'met' if ratio < 1.5 else 'NOT met'}",
                  f"- numpy working memory (tracemalloc) 4x / 1x: {b['tracemalloc_peak_mb'] / a['tracemalloc_peak_mb']:.2f}x "
                  f"(it holds the output label + confidence maps, 5 bytes/px, and a band of tile rows: ~sqrt(area)); "
                  f"growth of peak RSS over the pre-scene baseline: {a['peak_rss_mb'] - a['rss_before_scene_mb']:.0f} MB at 1x, "
                  f"{b['peak_rss_mb'] - b['rss_before_scene_mb']:.0f} MB at 4x"]
    worst = max(r["overhead_pct"] for r in results)
    per_size = ", ".join("{:.1f}% at {:g}x".format(r["overhead_pct"], r["scale"]) for r in results)
    lines.append(f"- tiling + blending + TTA bookkeeping over the models' own predict_on_batch time: "
                 f"{per_size} (target < 15%) -> "
                 f"{'met' if worst < 15 else 'NOT met'}")
    for r in results:
        if "models_alone_s" in r:
            lines.append(f"- check at {r['scale']:g}x: the models alone on the same tile batches in a second pass took "
                         f"{r['models_alone_s']:.1f} s vs {r['model_s']:.1f} s measured inside the run; overhead against "
                         f"that pass: {r['overhead_vs_alone_pct']:.1f}%")
    lines.append("")
    out = Path(args.out)
    write_text(out, "\n".join(lines))
    write_json(out.with_suffix(".json"), results)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
