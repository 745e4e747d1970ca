"""Training faults a user can cause end in one line naming the file, before the work, and lose
nothing: truncated / maskless inputs, a corrupt last.keras, a killed save's temporary files, a run
killed before its first epoch, a second copy of the same run (two real processes), file modes,
and the optimizer state really restored on resume (issue 13)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from landseg.cli.train import main  # noqa: E402
from landseg.data.errors import DataError  # noqa: E402
from landseg.model_files import ModelFileError  # noqa: E402
from landseg.training import run_training  # noqa: E402
from landseg.runs import RunFolder  # noqa: E402

LOCK_FILE = RunFolder.LOCK

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _private_check_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSEG_CACHE_DIR", str(tmp_path / "cache"))


def _copy_data(tiny_data, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    return data


class _Stop(Exception):
    pass


class _StopAtEpoch(keras.callbacks.Callback):
    """Stops the run (like a kill) when epoch ``n`` (0-based) begins; epochs before it are saved."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.n:
            raise _Stop()


def _cli_args(c):
    return [f"run.output_dir={c['run']['output_dir']}", f"run.tensorboard_dir={c['run']['tensorboard_dir']}",
            "run.name=tiny", f"data.data_dir={c['data']['data_dir']}", "data.crop_size=32", "data.val_fraction=0.25",
            "data.synthetic={n_images: 12, size: 64}", "model.name=tiny_test_net", "train.batch_size=4",
            "train.steps_per_epoch=3", "train.val_steps=2", "train.num_preview=2", "train.verbose=0"]


def test_truncated_image_is_named_in_one_line_before_training(tiny_config, tiny_data, tmp_path, capsys, monkeypatch):
    data = _copy_data(tiny_data, tmp_path)
    victim = sorted((data / "images").iterdir())[3]
    raw = victim.read_bytes()
    victim.write_bytes(raw[: len(raw) // 2])  # an interrupted copy
    c = tiny_config(data={"data_dir": str(data)})
    monkeypatch.setattr(sys, "argv", ["landseg"])
    from landseg.cli import common

    code = common.guarded(main, _cli_args(c) + [f"data.data_dir={data}"], prog="landseg train")
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {victim}: truncated image" in err and "hint: `landseg data check" in err
    assert "Traceback" not in err
    run_dir = Path(c["run"]["output_dir"]) / "tiny"
    assert not (run_dir / "best.keras").exists() and not (run_dir / "state.json").exists()
    # --debug shows the traceback too
    monkeypatch.setenv(common.DEBUG_ENV, "0")  # restored (unset) after the test
    common.guarded(main, _cli_args(c) + [f"data.data_dir={data}", "--debug"], prog="landseg train")
    assert "Traceback" in capsys.readouterr().err


def test_header_checks_are_cached_by_size_and_mtime(tiny_data, tmp_path):
    from landseg.classmaps import get_classmap
    from landseg.data import integrity
    from landseg.data.layouts import discover
    from landseg.data.pipeline import plan_samples

    integrity._cache = None
    samples = discover(tiny_data, "generic").labelled
    plan_samples(samples, get_classmap("synthetic"))
    cache = json.loads((tmp_path / "cache" / "file_checks.json").read_text())["files"]
    assert os.path.abspath(samples[0].image) in cache
    calls = []
    real = integrity.check_complete
    integrity.check_complete = lambda *a, **k: calls.append(a)  # noqa: E731
    try:
        integrity._cache = None  # a new process: read from disk
        plan_samples(samples, get_classmap("synthetic"))
    finally:
        integrity.check_complete = real
    assert calls == []  # nothing re-read the second time


def test_decode_error_inside_tf_data_names_the_file(tiny_data, tmp_path):
    """A file that passes the header checks but fails TF's decoder: the fit error becomes a DataError naming it."""
    import tensorflow as tf

    from landseg.config import from_dict
    from landseg.data.layouts import discover
    from landseg.training.fit import _raise_data_error

    data = _copy_data(tiny_data, tmp_path)
    samples = discover(data, "generic").labelled
    bad = Path(samples[2].mask)
    raw = bytearray(bad.read_bytes())
    n = len(raw)
    raw[n // 3: 2 * n // 3] = b"\x00" * (2 * n // 3 - n // 3)  # corrupt compressed data, IEND still there
    bad.write_bytes(bytes(raw))
    err = tf.errors.InvalidArgumentError(None, None, "jpeg::Uncompress failed. Invalid JPEG data or crop window.")
    config = from_dict({"data": {"name": "tiles", "classmap": "synthetic", "layout": "generic", "data_dir": str(data)}})
    with pytest.raises(DataError) as e:
        _raise_data_error(err, config)
    assert e.value.path == str(bad)
    _raise_data_error(RuntimeError("not a data error"), config)  # other errors pass through
    inside = tf.errors.InvalidArgumentError(None, None, "Error in user-defined function: Traceback (most recent call "
                                            f"last):\n  ...\nlandseg.data.errors.DataError: {bad}: truncated image "
                                            "file (broken data stream)\n\n\t [[{{node PyFunc}}]]")
    with pytest.raises(DataError, match=r"truncated image file \(broken data stream\)$") as e:
        _raise_data_error(inside, config)  # the reader's own line, taken from TensorFlow's message
    assert e.value.path == str(bad)


def test_image_without_mask_is_named_by_train_and_check(tiny_config, tiny_data, tmp_path, caplog):
    from landseg.classmaps import get_classmap
    from landseg.data.check import check_dataset

    from PIL import Image

    data = _copy_data(tiny_data, tmp_path)
    image = data / "images" / "extra.jpg"  # (a .jpg: the synthetic folder is still complete)
    Image.new("RGB", (64, 64), (10, 20, 30)).save(image)
    report = check_dataset(data, get_classmap("synthetic"), "generic")
    assert any(p.path == str(image) and "without a mask" in p.message for p in report.problems)
    from landseg.training.setup import prepare_data
    from landseg import config as cfg

    with caplog.at_level("WARNING", logger="landseg"):
        prepare_data(cfg.from_dict(tiny_config(data={"data_dir": str(data)})), None)
    assert str(image) in caplog.text and "without a mask" in caplog.text


def test_resume_restores_optimizer_state_and_survives_a_corrupt_last_keras(tiny_config, caplog):
    c = tiny_config(train={"epochs": 2})
    with pytest.raises(_Stop):
        run_training(c, callbacks=[_StopAtEpoch(1)])
    run_dir = Path(c["run"]["output_dir"]) / "tiny"
    assert not (run_dir / LOCK_FILE).exists()  # released on the way out
    saved = np.load(run_dir / "last_optimizer.npz")
    saved = [saved[k] for k in sorted(saved.files)]
    seen = {}

    class Peek(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["values"] = [keras.ops.convert_to_numpy(v).copy() for v in self.model.optimizer.variables]
            raise _Stop()

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with pytest.raises(_Stop):
            run_training(c, callbacks=[Peek()])
    assert not any("Skipping variable loading for optimizer" in str(x.message) for x in w)
    assert len(seen["values"]) == len(saved)
    assert any(np.any(v != 0) for v in saved[2:])  # the moments are not trivial
    for got, want in zip(seen["values"], saved):
        np.testing.assert_array_equal(got, want)

    # a killed save left a temporary file; last.keras is cut short by a full disk
    tmp = run_dir / ".last.keras.a1b2c3d4.tmp.keras"
    tmp.write_bytes(b"partial")
    last = run_dir / "last.keras"
    last.write_bytes(last.read_bytes()[:1000])
    state = json.loads((run_dir / "state.json").read_text())
    with caplog.at_level("INFO", logger="landseg"):
        out = run_training(c)
    assert out == run_dir and not (run_dir.parent / "tiny-2").exists()
    assert not tmp.exists() and "interrupted save" in caplog.text
    assert f"{last}: corrupt or truncated model file" in caplog.text and "resuming from" in caplog.text
    assert f"(epoch {state['best_epoch']})" in caplog.text
    final = json.loads((run_dir / "state.json").read_text())
    assert final["finished"] and final["epochs_completed"] == 2
    assert [r["epoch"] for r in final["history"]] == [1, 2]
    # files follow the umask (as open() would), not mkstemp's 0600
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("best.keras", "last.keras", "state.json", "history.csv", "config.yaml"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_both_checkpoints_corrupt_is_one_line(tiny_config, capsys):
    from landseg import config as cfg
    from landseg.runs import select as runs

    c = tiny_config(train={"epochs": 2})
    run_dir = Path(c["run"]["output_dir"]) / "tiny"
    runs.check_writable(run_dir)  # as a run that finished epoch 1 leaves its folder, checkpoints then damaged
    RunFolder(run_dir).write_config(cfg.from_dict(c).to_dict())
    RunFolder(run_dir).write_state({"epochs_completed": 1, "finished": False, "best_epoch": 1, "history": []})
    for name in ("last.keras", "best.keras"):
        (run_dir / name).write_bytes(os.urandom(300))
    from landseg.cli import common

    code = common.guarded(main, _cli_args(c) + ["train.epochs=2"], prog="landseg train")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"error: {run_dir / 'last.keras'}: corrupt or truncated model file" in err
    assert "best.keras cannot replace it" in err


def test_run_killed_before_its_first_epoch_resumes_in_the_same_folder(tiny_config, caplog):
    c = tiny_config(train={"epochs": 1, "val_steps": None})
    with pytest.raises(_Stop):
        run_training(c, callbacks=[_StopAtEpoch(0)])
    run_dir = Path(c["run"]["output_dir"]) / "tiny"
    assert json.loads((run_dir / "state.json").read_text())["epochs_completed"] == 0
    # as a kill -9 leaves it: the lock of a process that is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    with caplog.at_level("WARNING", logger="landseg"), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert run_training(c) == run_dir
    assert f"taking over the lock of process {dead.pid}" in caplog.text
    assert not [x for x in w if "ran out of data" in str(x.message)]  # Keras knows the validation length
    assert not (run_dir.parent / "tiny-2").exists()
    assert json.loads((run_dir / "state.json").read_text())["finished"]


@pytest.mark.slow
def test_second_copy_of_a_run_is_refused_while_the_first_completes(tiny_config):
    """Two real processes, the same command: the second stops within seconds naming the holder.
    (The first sleeps 1 s per batch for 20 batches, so it still runs when the second has started.)"""
    c = tiny_config()
    cmd = [sys.executable, str(Path(__file__).with_name("run_train.py")), *_cli_args(c), "train.epochs=1",
           "train.steps_per_epoch=20"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SLOW_FROM_EPOCH="0")
    marker = Path(c["run"]["output_dir"]) / "slow"
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline = time.time() + 300
        while not marker.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[1][-3000:]
        env.pop("SLOW_FROM_EPOCH")
        t0 = time.time()
        second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        took = time.time() - t0
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"this run is in use by process {first.pid} on host {socket.gethostname()}" in second.stderr
    assert "Traceback" not in second.stderr
    assert took < 60, took  # seconds, mostly the interpreter and TensorFlow starting
    assert first.returncode == 0, err[-3000:]
    run_dir = Path(c["run"]["output_dir"]) / "tiny"
    assert json.loads((run_dir / "state.json").read_text())["finished"]
    assert not (run_dir.parent / "tiny-2").exists() and not (run_dir / LOCK_FILE).exists()


def test_nan_error_is_not_preceded_by_done(tiny_config, caplog):
    from test_run import PoisonWeights

    from landseg.training import TrainingDiverged

    c = tiny_config(train={"epochs": 1})
    with caplog.at_level("INFO", logger="landseg"):
        with pytest.raises(TrainingDiverged):
            run_training(c, callbacks=[PoisonWeights(0)])
    assert "done in" not in caplog.text


def test_a_users_folder_with_the_run_name_is_never_trained_into(tiny_config):
    """A non-empty folder holding no run (the user's) is never written into: the run takes the next name."""
    from landseg import config as cfg
    from landseg.runs import select as runs

    config = cfg.from_dict(tiny_config())
    mine = Path(config.run.output_dir) / config.run.name
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    run_dir, state = runs.choose_run_dir(config)
    assert run_dir == mine.with_name(mine.name + "-2") and state is None
