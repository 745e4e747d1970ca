"""Peak memory of ``landseg predict`` on one big JPEG, in bytes per pixel over the process's baseline.

    python experiments/bench_predict_memory.py --size 8000 --work /tmp/predict_mem

Writes a small saved model (a 1x1 conv, 6 classes, with its run artifact), one ``size``^2 JPEG and a
64^2 one, then runs ``python -m landseg.predict`` on each under ``/usr/bin/time -v`` and reports the
maximum resident set sizes: (big - small) / pixels is the figure for the scene itself (the small
run is the baseline: Python, TensorFlow and the model). Run it under ``nice -n 19`` on a shared machine.
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
    print(f"baseline (64^2 scene) peak RSS: {base_kb / 1024:.0f} MiB")
    print(f"{args.size}^2 scene peak RSS: {big_kb / 1024:.0f} MiB ({secs:.0f} s)")
    print(f"over baseline: {(big_kb - base_kb) * 1024 / px:.2f} bytes per pixel")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
