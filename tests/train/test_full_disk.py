"""A real full disk (a small tmpfs, mounted for the test; skipped where mounting needs privileges
this user lacks): the disk fills while a training runs, the checkpoint save at the end of the
epoch fails with the file named, what earlier epochs saved stays loadable, and once space is
freed the same command resumes and finishes (issue 13)."""

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from landseg.io_utils import write_text  # noqa: E402
from landseg.model_files import load_keras_model  # noqa: E402
from landseg.training import run_training  # noqa: E402


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root or CAP_SYS_ADMIN")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Write until the file system refuses: a real ENOSPC for whoever writes next."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 65536, 4096, 1):  # big chunks first, then what is left, down to the byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


class _FillDiskAt(keras.callbacks.Callback):
    """Another process fills the disk while epoch ``n`` (0-based) trains."""

    def __init__(self, n, folder):
        super().__init__()
        self.n, self.folder = n, folder

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.n:
            _fill(self.folder)


def test_disk_filling_up_mid_run_loses_nothing_and_the_run_resumes(tiny_config, small_tmpfs):
    c = tiny_config(run={"output_dir": str(small_tmpfs / "runs")}, train={"epochs": 2})
    run_dir = small_tmpfs / "runs" / "tiny"
    with pytest.raises(OSError) as e:
        run_training(c, callbacks=[_FillDiskAt(1, small_tmpfs)])
    assert e.value.errno == errno.ENOSPC
    assert e.value.filename and Path(e.value.filename).parent == run_dir  # the file that could not be written
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epochs_completed"] == 1 and not state["finished"]
    for name in ("best.keras", "last.keras"):
        assert load_keras_model(run_dir / name).count_params() > 0  # epoch 1's checkpoints are intact
    assert not [p.name for p in run_dir.iterdir() if ".tmp" in p.name]  # no half-written temporaries left

    (small_tmpfs / "filler.bin").unlink()
    assert run_training(c) == run_dir  # same command: resumes at epoch 2 and finishes
    final = json.loads((run_dir / "state.json").read_text())
    assert final["finished"] and [r["epoch"] for r in final["history"]] == [1, 2]


def test_atomic_write_on_a_full_disk_keeps_the_old_file(small_tmpfs):
    target = small_tmpfs / "metrics.json"
    write_text(target, "old")
    filler = _fill(small_tmpfs)
    with pytest.raises(OSError) as e:
        write_text(target, "x" * 100_000)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert target.read_text() == "old" and sorted(p.name for p in small_tmpfs.iterdir()) == ["filler.bin", "metrics.json"]
    filler.unlink()
    write_text(target, "new")
    assert target.read_text() == "new"
