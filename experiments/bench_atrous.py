"""AtrousConv2D (pad, slice, matmul per tap) against Keras' dilated Conv2D (TensorFlow: SpaceToBatchND):
training-step time of one ASPP branch and of whole DeepLab models, in one process, alternating rounds;
ratios are the figures (the machine may be shared).

    python experiments/bench_atrous.py [--rounds 3]    # prints a Markdown table
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from unittest import mock

import keras
import numpy as np

from landseg.models import atrous, build_model


def _step_time(model, x, y, repeats=2) -> float:
    model.train_on_batch(x, y)  # trace
    t = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t) / repeats


def _branch(cls, rate, hw, channels=2048, filters=256):
    inputs = keras.Input((hw, hw, channels))
    model = keras.Model(inputs, cls(filters, 3, padding="same", dilation_rate=rate, use_bias=False)(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


def _model(name, options, keras_conv: bool):
    """The model as built, or with every dilated conv as Keras' own Conv2D (as before AtrousConv2D): every
    builder reaches the class through the ``atrous`` module, so patching it there is enough."""
    with mock.patch.object(atrous, "AtrousConv2D", keras.layers.Conv2D) if keras_conv else contextlib.nullcontext():
        model = build_model(name, num_classes=6, input_shape=(None, None, 3), **options)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    cases = []
    for rate in (6, 12, 18):  # ASPP branches on the stride-16 map of a 256² crop, batch 8
        x = rng.normal(size=(8, 16, 16, 2048)).astype("float32")
        y = rng.normal(size=(8, 16, 16, 256)).astype("float32")
        cases.append((f"one 3x3 ASPP branch, rate {rate}, 8x16x16x2048 -> 256",
                      _branch(keras.layers.Conv2D, rate, 16), _branch(atrous.AtrousConv2D, rate, 16), x, y))
    x = rng.random((2, 256, 256, 3)).astype("float32")
    y = rng.integers(0, 6, (2, 256, 256))
    for name, options in (("deeplabv3_resnet50", {}), ("deeplabv3plus", {"encoder": "resnet50"}),
                          ("deeplabv3plus", {"encoder": "efficientnet_lite0", "aspp_filters": 64})):
        label = f"`{name}` {options or ''} training step, 2 x 256²".replace("{", "").replace("}", "")
        cases.append((label, _model(name, options, True), _model(name, options, False), x, y))
    print("| case | Keras Conv2D s | AtrousConv2D s | speed-up (median of rounds) |")
    print("|---|---|---|---|")
    for label, ref, ours, x, y in cases:
        ref_t, our_t = [], []
        for _ in range(a.rounds):
            ref_t.append(_step_time(ref, x, y))
            our_t.append(_step_time(ours, x, y))
        ratio = statistics.median(r / o for r, o in zip(ref_t, our_t))
        print(f"| {label} | {statistics.median(ref_t):.3f} | {statistics.median(our_t):.3f} | {ratio:.1f}x |",
              flush=True)


if __name__ == "__main__":
    main()
