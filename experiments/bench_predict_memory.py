"""Peak memory of ``landseg predict`` on one big JPEG, in bytes per pixel over the process's baseline.

    python experiments/bench_predict_memory.py --size 8000 --work /tmp/predict_mem

Writes a small saved model (a 1x1 conv, 6 classes, with its run artifact) and one ``size``^2 JPEG, then
measures two ways (both printed):

* ``in-process`` (the figure ``landseg/docs/reliability.md`` states): a fresh Python process imports
  landseg, loads the model and predicts one tile batch of a small scene (so TensorFlow's runtime and the
  model's kernels exist), reads its resident set (``VmRSS``) as the baseline, resets the peak
  (``/proc/self/clear_refs``), runs ``predict_folder`` on the big scene and reads the peak (``VmHWM``):
  (peak - baseline) / pixels.
* ``two-runs``: ``python -m landseg.predict`` on a 64^2 and on the big scene under ``/usr/bin/time -v``;
  (big peak - small peak) / pixels.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path


def _model(folder: Path) -> Path:
    import keras

    from landseg.classmaps import get_classmap
    from landseg.runs import save_run

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best.keras"
    if not path.exists():
        inp = keras.Input((None, None, 3))
        out = keras.layers.Conv2D(6, 1, activation="softmax")(inp)
        keras.Model(inp, out).save(path)
        save_run(folder, model="bench_1x1", model_options={}, classmap=get_classmap("synthetic"), bands=3,
                 size_multiple=1, hist_reference=None)
    return path


def _jpeg(path: Path, size: int) -> None:
    import numpy as np
    from PIL import Image

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for y in range(0, size, 1000):  # built in strips so this script's own peak stays small
        h = min(1000, size - y)
        yy = np.arange(y, y + h)[:, None]
        xx = np.arange(size)[None, :]
        base = ((np.sin(yy / 40.0) * np.cos(xx / 55.0)) * 100 + 128).astype(np.uint8)
        strip = np.stack([base, np.roll(base, 7, axis=1), 255 - base], -1)
        strip = (strip.astype(np.int16) + rng.integers(-20, 20, strip.shape)).clip(0, 255).astype(np.uint8)
        rows.append(strip)
    Image.fromarray(np.concatenate(rows)).save(path, quality=90)


def _peak_kb(cmd: list[str]) -> tuple[int, float]:
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", r.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return kb, secs


CHILD = r"""
import os, sys
from pathlib import Path
import numpy as np
from landseg.inference.ensemble import load_ensemble
from landseg.inference.predict import PredictorSettings, predict_folder

model, big_dir, out, tile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = PredictorSettings(tile=tile)
predictor = settings.build(load_ensemble([model]))
predictor.predict_scene(np.zeros((tile, 2 * tile, 3), np.uint8))  # TensorFlow's runtime and the kernels exist now

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

base = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from here
predict_folder([model], big_dir, out, settings=settings)
print(base, status("VmHWM:"))
"""


def in_process_kb(model: Path, big_dir: Path, out: Path, tile: int) -> tuple[int, int]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(model), str(big_dir), str(out), str(tile)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed:\n{r.stderr[-3000:]}")
    base, peak = map(int, r.stdout.split()[-2:])
    return base, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8000)
    ap.add_argument("--work", default="/tmp/landseg_predict_mem")
    ap.add_argument("--tile", type=int, default=512)
    args = ap.parse_args()
    work = Path(args.work)
    model = _model(work / "model")
    small, big = work / "small" / "s.jpg", work / f"big{args.size}" / "b.jpg"
    _jpeg(small, 64)
    _jpeg(big, args.size)
    env_cmd = [sys.executable, "-m", "landseg.predict", "--models", str(model), "--no-progress", "--tile", str(args.tile)]
    base_kb, _ = _peak_kb(env_cmd + ["--input", str(small.parent), "--output", str(work / "out_small")])
    big_kb, secs = _peak_kb(env_cmd + ["--input", str(big.parent), "--output", str(work / "out_big")])
    px = args.size ** 2
    base, peak = in_process_kb(model, big.parent, work / "out_inproc", args.tile)
    print(f"in-process: baseline RSS after TensorFlow + model + one tile batch {base / 1024:.0f} MiB, peak while "
          f"predicting the {args.size}^2 scene {peak / 1024:.0f} MiB: {(peak - base) * 1024 / px:.2f} bytes per pixel")
    print(f"two runs: baseline (64^2 scene) peak RSS: {base_kb / 1024:.0f} MiB")
    print(f"{args.size}^2 scene peak RSS: {big_kb / 1024:.0f} MiB ({secs:.0f} s)")
    print(f"over baseline: {(big_kb - base_kb) * 1024 / px:.2f} bytes per pixel")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
