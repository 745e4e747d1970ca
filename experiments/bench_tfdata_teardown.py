"""Does tf.data's model-based autotuner make a ``fit`` end late? (issue 14's "half speed by chance")

One process; a tiny CSE-UNet (width 4, 64² inputs) fitted 5 times for about 13 s each on the same
in-memory data, three ways: Keras' own numpy adapter, a ``tf.data`` pipeline ending in
``prefetch(AUTOTUNE)`` (autotuner on, TensorFlow's default), and the same pipeline with
``options.autotune.enabled = False`` (what landseg's pipeline sets). The autotuner's thread sleeps for
optimisation periods of 10 ms, 20 ms, 40 ms, ...; if tearing the iterator down waits for the current
sleep, a fit's wall time is rounded up to 10 ms x (2^k - 1): 20.47 s, 40.95 s, ...

    python experiments/bench_tfdata_teardown.py [--images 2000] [--fits 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def worker(mode: str, images: int, fits: int) -> list[float]:
    import numpy as np

    import landseg  # noqa: F401 - its threading
    import tensorflow as tf
    from landseg.models import build_model

    model = build_model("cse_unet", 6, input_shape=(64, 64, 3), base_width=4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((images, 64, 64, 3), dtype=np.float32)
    y = np.zeros((images, 64, 64), "int32")

    def dataset():
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).prefetch(tf.data.AUTOTUNE)
        if mode == "tfdata_autotune_off":
            options = tf.data.Options()
            options.autotune.enabled = False
            ds = ds.with_options(options)
        return ds

    model.fit(x[:16], y[:16], batch_size=8, verbose=0)  # trace
    times = []
    for _ in range(fits):
        t = time.perf_counter()
        if mode == "numpy":
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        else:
            model.fit(dataset(), epochs=1, verbose=0)
        times.append(round(time.perf_counter() - t, 2))
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--fits", type=int, default=5)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.images, args.fits)))
        return 0
    for mode in ("numpy", "tfdata_autotune_on", "tfdata_autotune_off"):
        out = subprocess.run([sys.executable, __file__, "--worker", mode, "--images", str(args.images),
                              "--fits", str(args.fits)], capture_output=True, text=True, check=True)
        print(json.dumps({"mode": mode, "fit_seconds": json.loads(out.stdout.strip().splitlines()[-1])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
