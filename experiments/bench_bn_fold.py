"""Does folding BatchNorm into the convolutions speed up inference? (issue 14)

``landseg.models.fold.fold_batchnorm`` moves each BatchNorm that follows a conv into the conv's
kernel and bias. Per model, three processes, alternating, several rounds: the model as built,
folded (what ``landseg.predict`` / ``evaluate`` run), and with every BatchNorm's ``call`` replaced
by the identity (wrong numbers, right cost: the most any folding could win, including BatchNorms
inside custom layers, which folding leaves alone). 256² inputs, batch 8, the model called in a
``tf.function`` as ``predict_on_batch`` does.

    python experiments/bench_bn_fold.py [--rounds 3] [--batches 6]

With ``--model PATH --scenes DIR``: whole scenes instead, a saved model as loaded vs folded, each
process running ``Predictor.predict_scene`` (default 512-px tiles, 25 % overlap, no TTA) over every
image in DIR after one warm-up tile batch; it reports the model calls' time and the whole time.

    python experiments/bench_bn_fold.py --model experiments/runs/deepglobe_cpu_s0/best.keras --scenes DIR
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODELS = {"lite_unet": {}, "unet": {}, "cse_unet_w8": {"base_width": 8}, "cse_unet_w16": {"base_width": 16}}
MODES = ("as_built", "folded", "removed")


def worker(model_key: str, bn: str, batches: int) -> dict:
    import numpy as np

    import landseg  # noqa: F401 - its threading
    import tensorflow as tf
    from landseg.models import build_model
    from landseg.models.fold import fold_batchnorm

    if bn == "removed":
        import keras

        from landseg.models.common import FastBatchNorm

        def identity(self, inputs, training=None, mask=None):
            return inputs

        keras.layers.BatchNormalization.call = FastBatchNorm.call = identity  # segmentation-models' and landseg's
    name = model_key.split("_w")[0]
    model = build_model(name, 6, input_shape=(256, 256, 3), **MODELS[model_key])
    if bn == "folded":
        model = fold_batchnorm(model)
    forward = tf.function(lambda x: model(x, training=False))
    x = np.random.default_rng(0).random((8, 256, 256, 3), dtype=np.float32)
    forward(x).numpy()
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        forward(x).numpy()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"model": model_key, "bn": bn, "img_per_s": round(8 * batches / wall, 2), "cores": round(cpu / wall, 2)}


def scene_worker(model_path: str, scenes: str, bn: str) -> dict:
    import glob
    import os

    import numpy as np

    import landseg  # noqa: F401 - its threading
    from landseg.data import read_image
    from landseg.inference.ensemble import load_entry
    from landseg.inference.predictor import Predictor
    from landseg.model_files import load_keras_model

    entry = load_entry(model_path)  # folds
    if bn == "as_built":
        entry.model = load_keras_model(model_path)
    predictor = Predictor(entry)
    predictor.predict_scene(np.zeros((512, 512, 3), np.uint8))  # traces
    predictor.timing.__init__()
    paths = sorted(p for p in glob.glob(os.path.join(scenes, "*")) if os.path.isfile(p))
    pixels = 0
    for path in paths:
        image = read_image(path)
        pixels += image.shape[0] * image.shape[1]
        predictor.predict_scene(image)
    t = predictor.timing
    return {"model": os.path.basename(os.path.dirname(model_path)), "bn": bn, "scenes": len(paths),
            "model_s": round(t.model_s, 2), "total_s": round(t.total_s, 2), "mpx_s": round(pixels / 1e6 / t.total_s, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--model", help="a saved model: time whole scenes instead")
    p.add_argument("--scenes", help="folder of scenes for --model")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        if args.model:
            print(json.dumps(scene_worker(args.model, args.scenes, args.worker[1])))
        else:
            print(json.dumps(worker(*args.worker, args.batches)))
        return 0
    if args.model:
        for r in range(args.rounds):
            for bn in ("as_built", "folded"):
                out = subprocess.run([sys.executable, __file__, "--worker", "scene", bn, "--model", args.model,
                                      "--scenes", args.scenes], capture_output=True, text=True, check=True)
                print(json.dumps({"round": r, **json.loads(out.stdout.strip().splitlines()[-1])}), flush=True)
        return 0
    for r in range(args.rounds):
        for model_key in MODELS:
            for bn in MODES:
                out = subprocess.run([sys.executable, __file__, "--worker", model_key, bn, "--batches",
                                      str(args.batches)], capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                print(json.dumps({"round": r, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
