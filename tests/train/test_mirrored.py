"""Two CPU replicas (MirroredStrategy) must give the same step, loss and metrics as one device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def test_two_replica_step_matches_single_device():
    script = Path(__file__).with_name("mirrored_check.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    single, mirrored = r["default"], r["mirrored"]
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    np.testing.assert_allclose(single["loss"], mirrored["loss"], rtol=1e-5)
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # metrics are summed over replicas, not taken from one: the whole batch is counted
    assert np.array_equal(single["cm"], mirrored["cm"])
    assert np.sum(mirrored["cm"]) == 8 * 8 * 8
    np.testing.assert_allclose(single["eval"]["miou"], mirrored["eval"]["miou"], rtol=1e-6)
    np.testing.assert_allclose(single["eval"]["loss"], mirrored["eval"]["loss"], rtol=1e-5)
