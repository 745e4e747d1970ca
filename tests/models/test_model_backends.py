"""CSE-UNet is keras.ops-only: it trains one step on the JAX and PyTorch backends too."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np, keras
from landseg.models import build_model
assert keras.backend.backend() == "{backend}", keras.backend.backend()
m = build_model("cse_unet", 4, input_shape=(None, None, 3), base_width=4, dropout=0.1)
rng = np.random.default_rng(0)
x = rng.random((2, 32, 32, 3), dtype=np.float32)
y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (2, 32, 32))]
before = [keras.ops.convert_to_numpy(w) for w in m.trainable_weights]
p = keras.ops.convert_to_numpy(m(x))
assert p.shape == (2, 32, 32, 4) and np.allclose(p.sum(-1), 1, atol=1e-5)
# one-hot CE: Keras' sparse CE on (B, H, W) targets breaks torch 2.13's nll_loss backward
# ("grad_input must be contiguous"), a Keras/torch issue unrelated to the model.
m.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
loss = float(m.train_on_batch(x, y))
changed = sum(not np.array_equal(b, keras.ops.convert_to_numpy(w)) for b, w in zip(before, m.trainable_weights))
assert np.isfinite(loss) and changed == len(before), (loss, changed, len(before))
print("OK", loss, changed)
"""


@pytest.mark.parametrize("backend,module", [("jax", "jax"), ("torch", "torch")])
def test_cse_unet_forward_backward_on_backend(backend, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: KERAS_BACKEND={backend} cannot run (pip install {module})")
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           # XLA's optimising compile of every eager op dominates on 2 cores (build 120 s -> 20 s)
           "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(backend=backend)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("OK")
