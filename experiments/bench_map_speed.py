"""Mapping speed: `landseg.predict` over a folder vs segmentation-models' Unet("resnet34") bare forward.

Both are measured in this one command on this machine: first the reference (random-weight
sm Unet-ResNet34, `predict_on_batch` on 512 x 512 tiles, batch 4, after one warm-up batch),
then `python -m landseg.predict` as a user runs it (default tiling, no TTA), timed from start
to exit, so TensorFlow's start-up and model loading count against landseg. Pixel rate =
input pixels / seconds.

    python experiments/bench_map_speed.py --model experiments/runs/dubai_cpu/best.keras \
        --input "../shared/data/dubai-aerial/Tile 3/images" --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def reference_mpx_s(tiles: int = 12, batch: int = 4, size: int = 512) -> float:
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    from landseg.models.sm_models import import_sm

    sm = import_sm()
    model = sm.Unet("resnet34", input_shape=(size, size, 3), classes=6, encoder_weights=None)
    x = np.random.default_rng(0).random((batch, size, size, 3)).astype("float32")
    model.predict_on_batch(x)
    t = time.perf_counter()
    for _ in range(tiles // batch):
        model.predict_on_batch(x)
    return tiles * size * size / (time.perf_counter() - t) / 1e6


def predict_mpx_s(model: str, folder: str, tta: str = "none") -> float:
    pixels = sum(np.prod(Image.open(p).size) for p in sorted(Path(folder).iterdir())
                 if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "landseg.predict", "--models", model, "--input", folder,
                        "--output", out, *(["--tta", tta] if tta != "none" else [])], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return pixels / (time.perf_counter() - t) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tta", nargs="+", default=["none"], help="TTA settings of landseg.predict to time, each run")
    args = ap.parse_args()
    rows = []
    for i in range(args.runs):
        ref = reference_mpx_s()
        for tta in args.tta:
            ours = predict_mpx_s(args.model, args.input, tta)
            rows.append({"run": i + 1, "tta": tta, "sm_unet_resnet34_mpx_s": ref, "landseg_predict_mpx_s": ours,
                         "ratio": ours / ref})
            print(json.dumps(rows[-1]), flush=True)
    for tta in args.tta:
        ratios = [r["ratio"] for r in rows if r["tta"] == tta]
        rates = [r["landseg_predict_mpx_s"] for r in rows if r["tta"] == tta]
        print(json.dumps({"tta": tta, "mpx_s": [round(r, 4) for r in rates], "ratio_mean": statistics.mean(ratios),
                          "ratio_min": min(ratios), "ratio_max": max(ratios)}))


if __name__ == "__main__":
    main()
