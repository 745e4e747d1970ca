"""landseg sets TensorFlow's threading at `import landseg` (issue 14), checked in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from landseg import runtime

REPO = Path(__file__).resolve().parents[1]
_VARS = ("LANDSEG_INTRA_OP_THREADS", "LANDSEG_INTER_OP_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def _fresh(code: str, **env) -> dict:
    """Run ``code`` in a new interpreter (no threading variables unless given); its last stdout line as JSON."""
    e = {k: v for k, v in os.environ.items() if k not in _VARS}
    e.update(env, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_REPORT = """
    import json, os
    import tensorflow as tf
    from landseg import runtime
    print(json.dumps({"intra": tf.config.threading.get_intra_op_parallelism_threads(),
                      "inter": tf.config.threading.get_inter_op_parallelism_threads(),
                      "cores": runtime.usable_cores(), "env": os.environ.get("TF_NUM_INTRAOP_THREADS")}))
"""


def test_import_landseg_sets_tf_threads_before_tf_starts():
    # library use: import landseg first, TensorFlow (via keras) afterwards
    r = _fresh("import landseg, keras\n" + textwrap.dedent(_REPORT))
    intra, inter = runtime.default_threading(r["cores"])
    assert r["cores"] == runtime.usable_cores()
    assert (r["intra"], r["inter"]) == (intra, inter)
    assert r["env"] == str(intra)


def test_explicit_environment_wins_and_tf_imported_first_works():
    # TensorFlow already imported before landseg; the user's TF variable wins
    r = _fresh("import tensorflow, landseg\n" + textwrap.dedent(_REPORT), TF_NUM_INTRAOP_THREADS="1")
    assert (r["intra"], r["inter"]) == (1, runtime.default_threading(r["cores"])[1])
    r = _fresh("import landseg\n" + textwrap.dedent(_REPORT), LANDSEG_INTRA_OP_THREADS="3",
               LANDSEG_INTER_OP_THREADS="2")
    assert (r["intra"], r["inter"]) == (3, 2)


def test_user_tf_config_call_is_kept():
    r = _fresh(textwrap.dedent("""
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        import landseg
        import keras
    """) + textwrap.dedent(_REPORT))
    assert r["intra"] == 1 and r["inter"] == runtime.default_threading(r["cores"])[1]


def test_tf_defaults_on_request():
    r = _fresh("import landseg\n" + textwrap.dedent(_REPORT), LANDSEG_INTRA_OP_THREADS="tf",
               LANDSEG_INTER_OP_THREADS="tf")
    assert (r["intra"], r["inter"], r["env"]) == (0, 0, None)


def test_resolve_precedence_and_errors():
    env = {"TF_NUM_INTRAOP_THREADS": "3", "LANDSEG_INTER_OP_THREADS": "2"}
    t = runtime.resolve(environ=env)
    assert (t.intra_op, t.inter_op) == (3, 2)
    t = runtime.resolve(intra_op=1, environ=env)
    assert (t.intra_op, t.inter_op) == (1, 2)
    assert runtime.resolve(intra_op="tf", environ={}).intra_op is None
    assert runtime.resolve(environ={}).intra_op == runtime.usable_cores()
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(runtime.ThreadingError):
            runtime.resolve(intra_op=bad, environ={})


def test_usable_cores_honours_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: 1.5)
    assert runtime.usable_cores() == 2
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: None)
    assert runtime.usable_cores() == 4


def test_config_keys_for_threads_and_bf16():
    from landseg import config as cfg

    c = cfg.load_config(None, ["run.intra_op_threads=1", "train.mixed_precision=bfloat16"], validate_names=False)
    assert c.run.intra_op_threads == 1 and c.run.inter_op_threads is None
    assert cfg.POLICIES[c.train.mixed_precision] == "mixed_bfloat16"
    assert cfg.POLICIES[cfg.load_config(None, ["train.mixed_precision=true"], validate_names=False)
                        .train.mixed_precision] == "mixed_float16"
    with pytest.raises(cfg.ConfigError, match="mixed_precision"):
        cfg.load_config(None, ["train.mixed_precision=half"], validate_names=False)


@pytest.mark.slow
def test_bf16_training_runs(tmp_path):
    """A tiny CSE-UNet trains under mixed_bfloat16 (the CPU's bf16 path) and keeps float32 outputs."""
    import numpy as np

    from landseg.training import run_training

    run = run_training({"run": {"output_dir": str(tmp_path), "tensorboard_dir": str(tmp_path / "tb"), "name": "bf16"},
                        "data": {"crop_size": 32, "data_dir": str(tmp_path / "syn"),
                                 "synthetic": {"n_images": 8, "size": 64}},
                        "model": {"options": {"base_width": 4}},
                        "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "mixed_precision": "bfloat16",
                                  "verbose": 0, "num_preview": 0}})
    import keras

    try:
        from landseg.models import load_model

        model = load_model(run / "best.keras")
        out = np.asarray(model(np.zeros((1, 32, 32, 3), np.float32)))
        assert out.dtype == np.float32 and np.isfinite(out).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")
