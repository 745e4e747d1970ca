"""Every stage for each given model, beyond what the test suite's time budget covers.

Per model (default options unless given as ``name:key=value,...``):

1. ``python -m landseg.train model.name=NAME train.epochs=1 train.steps_per_epoch=2 train.batch_size=2
   data.crop_size=64`` (built-in synthetic data) in a subprocess: exit code, wall time, the second
   step's time from Keras' progress bar, parameters of its best.keras.
2. The same run through the library (``landseg.training.run_training``), with a callback that keeps
   the in-memory model's probabilities on a probe batch at the end of training; then its best.keras:
   reloaded (max |difference| to those), BatchNorm folded (max |difference| to the reloaded model),
   exported to ONNX and TFLite at 64 px (``landseg.export``'s own check: max |difference| to Keras)
   and a rasterio GeoTIFF of two 64 px tiles mapped by ``landseg.predict`` (share of pixels equal to
   the model's own argmax, CRS and transform kept). Its callback also times each training step (the
   first includes tracing), finer than the progress bar's whole seconds.

Writes experiments/results/models_checks.md (replacing it).

    python experiments/check_models.py                       # segformer, deeplabv3plus, fcn8s, fcn8s with hed-vgg16, multires_unet
    python experiments/check_models.py --models fcn8s:fc_width=64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ["segformer", "deeplabv3plus", "fcn8s", "fcn8s:encoder_weights=hed-vgg16", "multires_unet"]
SIZE = 64


def overrides(spec: str) -> list[str]:
    name, _, opts = spec.partition(":")
    out = [f"model.name={name}"]
    for item in filter(None, opts.split(",")):
        out.append(f"model.options.{item}")
    return out


def cli_run(spec: str, root: Path) -> dict:
    """The training command in a subprocess, as a user types it."""
    tag = spec.replace(":", "_").replace("=", "-").replace(",", "_")
    cmd = [sys.executable, "-m", "landseg.train", *overrides(spec), "train.epochs=1", "train.steps_per_epoch=2",
           "train.batch_size=2", f"data.crop_size={SIZE}", f"run.name=cli-{tag}",
           f"run.output_dir={root / 'runs'}", f"run.tensorboard_dir={root / 'tb'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    steps = re.findall(r"2/2 \S+ \d+m?s (\d+)(ms|s)/step - loss", text)  # step 2 (Keras: time after the first step)
    step_s = (float(steps[0][0]) / (1000 if steps[0][1] == "ms" else 1)) if steps else None
    params = None
    best = root / "runs" / f"cli-{tag}" / "best.keras"
    if best.is_file():
        from landseg.models import load_model

        params = int(load_model(best).count_params())
    return {"command": shlex.join(["python", "-m", "landseg.train", *cmd[3:]]), "exit": proc.returncode,
            "wall_s": round(wall, 1), "step2_s": step_s, "params": params,
            "error": None if proc.returncode == 0 else text.strip().splitlines()[-1][:300]}


def library_checks(spec: str, root: Path) -> dict:
    import keras

    from landseg.export import export_model
    from landseg.inference.predict import PredictorSettings, predict_folder
    from landseg.models import load_model
    from landseg.models.fold import fold_batchnorm
    from landseg.training import run_training

    name, _, opts = spec.partition(":")
    options = dict(item.split("=", 1) for item in filter(None, opts.split(",")))
    options = {k: json.loads(v) if v[:1] in "-0123456789[{tfn" else v for k, v in options.items()}
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.steps = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append(time.perf_counter() - self.t)

        def on_train_end(self, logs=None):
            self.probs = np.asarray(self.model.predict_on_batch(x))

    probe = Probe()
    tag = spec.replace(":", "_").replace("=", "-").replace(",", "_")
    run_dir = run_training({
        "run": {"name": f"lib-{tag}", "output_dir": str(root / "runs"), "tensorboard_dir": str(root / "tb")},
        "data": {"name": "synthetic", "data_dir": str(REPO / "data" / "synthetic"), "crop_size": SIZE},
        "model": {"name": name, "options": options},
        "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "verbose": 0}}, callbacks=[probe])
    best = run_dir / "best.keras"
    loaded = load_model(best)
    out = {"step_s": [round(t, 3) for t in probe.steps],
           "reload_max_diff": float(np.abs(loaded.predict_on_batch(x) - probe.probs).max())}
    folded = fold_batchnorm(loaded)
    out["fold"] = "no BatchNorm: model returned unchanged" if folded is loaded else \
        float(np.abs(folded.predict_on_batch(x) - loaded.predict_on_batch(x)).max())
    for fmt in ("onnx", "tflite"):
        try:
            out[f"{fmt}_max_diff"] = export_model(best, fmt, root / f"export-{tag}" / fmt, tile=SIZE).max_abs_diff
        except Exception as e:  # noqa: BLE001 - recorded in the table
            out[f"{fmt}_max_diff"] = f"{type(e).__name__}: {e}"[:200]

    import rasterio
    from rasterio.transform import from_origin

    image = (np.random.default_rng(1).random((SIZE, 2 * SIZE, 3)) * 255).astype(np.uint8)
    src = root / f"geo-{tag}"
    src.mkdir()
    transform = from_origin(500000.0, 5200000.0, 2.0, 2.0)
    with rasterio.open(src / "scene.tif", "w", driver="GTiff", width=2 * SIZE, height=SIZE, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    predict_folder([best], src, root / f"map-{tag}", settings=PredictorSettings(tile=SIZE, overlap=0.0))
    with rasterio.open(root / f"map-{tag}" / "classes" / "scene.tif") as ds:
        kept = ds.crs.to_string() == "EPSG:32633" and ds.transform.almost_equals(transform)
        labels = ds.read(1)
    tiles = np.stack([image[:, :SIZE], image[:, SIZE:]]).astype(np.float32) / 255.0
    expected = np.concatenate(list(np.argmax(loaded.predict_on_batch(tiles), -1)), axis=1)
    out["geotiff"] = f"{np.mean(labels == expected):.4f} of pixels = model argmax; CRS/transform kept: {kept}"
    return out


def fmt(v) -> str:
    return f"{v:.1e}" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--out", default=str(REPO / "experiments" / "results" / "models_checks.md"))
    args = p.parse_args(argv)

    from bench_model_ratios import uptime

    load_before = uptime()
    rows = []
    with tempfile.TemporaryDirectory(prefix="landseg-checks-") as tmp:
        root = Path(tmp)
        for spec in args.models:
            cli = cli_run(spec, root)
            print(json.dumps(cli), flush=True)
            lib = library_checks(spec, root)
            print(json.dumps(lib), flush=True)
            rows.append((spec, cli, lib))
    load_after = uptime()

    command = "python experiments/check_models.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Model checks: every stage per model\n\nCommand: `{command.strip()}`\n\nLoad: `{load_before}` before, "
             f"`{load_after}` after (2 cores shared with other jobs). See the script's docstring for what each column "
             "is. Differences are max |difference| of class probabilities.\n",
             "| model | train command exit | wall s | step 2 s as printed | params | library run: steps s (batch 2, 64²) "
             "| reload | BN fold | ONNX | TFLite | GeoTIFF via landseg.predict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for spec, cli, lib in rows:
        lines.append(f"| `{spec}` | {cli['exit']}{' ' + cli['error'] if cli['error'] else ''} | {cli['wall_s']} | "
                     f"{cli['step2_s']} | {cli['params']:,} | {', '.join(map(str, lib['step_s']))} | "
                     f"{fmt(lib['reload_max_diff'])} | {fmt(lib['fold'])} | "
                     f"{fmt(lib['onnx_max_diff'])} | {fmt(lib['tflite_max_diff'])} | {lib['geotiff']} |")
    lines.append("\nTraining commands run:\n")
    lines += [f"    {cli['command']}" for _, cli, _ in rows]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_model_ratios.uptime
    sys.exit(main())
