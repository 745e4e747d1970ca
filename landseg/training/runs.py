"""Run folders: where a training writes and how a killed run is found again.

A run folder ``<output_dir>/<run_name>/`` holds the resolved ``config.yaml``, the run artifact
``model_info.json`` (:mod:`landseg.run_artifact`: what later stages need), checkpoints and the
resume state ``state.json``. The same command reaches the same folder, so
a run killed mid-way continues where it stopped instead of starting over.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import yaml

from landseg.bounded_yaml import load_file
from landseg.config import Config
from landseg.io_utils import atomic_path, write_json, write_text
from landseg.run_artifact import CONFIG_FILE

STATE_FILE = "state.json"
# Keys that may differ between a killed run and its restart (they do not change what is trained).
_RESUME_INSENSITIVE = {("run", "resume"), ("train", "verbose"), ("train", "resume_from"), ("train", "lr_find")}


class OutputError(OSError):
    """The output folder cannot take the run's outputs (unwritable, or too little free space)."""


def default_run_name(config: Config) -> str:
    return config.run.name or f"{config.data.name}-{config.model.name}"


def comparable_config(config: dict | Config) -> dict:
    """A config as a dict without the keys that may change when a run resumes."""
    c = config.to_dict() if isinstance(config, Config) else copy.deepcopy(config)
    for section, key in _RESUME_INSENSITIVE:
        c.get(section, {}).pop(key, None)
    return c


def read_state(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)


def write_state(run_dir: str | os.PathLike, state: dict) -> None:
    write_json(Path(run_dir) / STATE_FILE, state)


def read_run_config(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    return load_file(path)


def choose_run_dir(config: Config) -> tuple[Path, dict | None]:
    """(run folder, resume state or None) for this config.

    ``train.resume_from`` names a folder to continue. Otherwise, with ``run.resume: auto``, the
    newest folder ``<name>``, ``<name>-2``, ... is continued when it holds an unfinished run of
    the same config; a finished or different run gets the next free name, never overwritten.
    """
    resume_from = config.train.resume_from
    if resume_from:
        run_dir = Path(resume_from)
        state = read_state(run_dir)
        if state is None:
            raise OutputError(f"{run_dir}: train.resume_from names a folder without a resumable run ({STATE_FILE} missing)")
        return run_dir, state
    out = Path(config.run.output_dir)
    name = default_run_name(config)
    candidates = [out / name] + [out / f"{name}-{i}" for i in range(2, 10000)]
    existing = [d for d in candidates[:10000] if d.exists()] if out.is_dir() else []
    if existing:
        last = existing[-1]
        from landseg.training.lock import held_by_other

        if held_by_other(last) is not None:  # a live copy of this run: taking its lock is refused, naming it
            held = read_state(last)          # (multi-worker: the chief holds it; workers follow its start)
            resumable = held is not None and not held.get("finished") and held.get("epochs_completed", 0) > 0
            return last, held if resumable else None
        state = read_state(last)
        saved = read_run_config(last)
        same = saved is None and state is None or comparable_config(saved or {}) == comparable_config(config)
        if config.run.resume == "auto" and same and not _foreign(last) and (state is None or not state.get("finished")):
            if state is not None and state.get("epochs_completed", 0) > 0:
                return last, state
            if not _has_checkpoints(last):  # killed before its first epoch ended: start again in the same folder
                return last, None
        idx = candidates.index(last)
        for d in candidates[idx + 1:]:
            if not d.exists():
                return d, None
    return candidates[0], None


def _foreign(path: Path) -> bool:
    """Whether ``path`` is something no landseg run wrote (a file, or a non-empty folder without a run's
    files): such a folder is never trained into; the run takes the next free name."""
    from landseg.run_artifact import RUN_FILE
    from landseg.training.lock import LOCK_FILE

    if not path.is_dir():
        return True
    names = set(os.listdir(path))
    return bool(names) and not names & {STATE_FILE, CONFIG_FILE, RUN_FILE, LOCK_FILE, "best.keras", "last.keras"}


def _has_checkpoints(run_dir: Path) -> bool:
    return any((run_dir / f).exists() for f in ("best.keras", "last.keras"))


def check_writable(folder: str | os.PathLike) -> None:
    """Create ``folder`` and write, rename and remove a probe file there, or raise :class:`OutputError` now."""
    from landseg.io_utils import NotWritableError, check_writable_dir

    try:
        check_writable_dir(folder)
    except NotWritableError as e:
        raise OutputError(f"{e}; choose another with run.output_dir=... / run.tensorboard_dir=...") from None


def estimate_output_bytes(num_params: int, epochs: int) -> int:
    """A generous estimate of what a run writes: checkpoints with optimizer state, logs, plots (a history
    row, TensorBoard scalars and a preview panel per epoch: well under 500 kB)."""
    checkpoint = num_params * 4 * 3 + 1_000_000  # weights + two Adam moments
    return 3 * checkpoint + epochs * 500_000 + 20_000_000


def check_free_space(folder: str | os.PathLike, need_bytes: int) -> None:
    usage = shutil.disk_usage(folder)
    if usage.free < need_bytes:
        raise OutputError(f"{folder}: only {usage.free / 1e6:.0f} MB free, this run needs about "
                          f"{need_bytes / 1e6:.0f} MB for checkpoints and logs; free some space or set run.output_dir")


def write_config(run_dir: str | os.PathLike, config: Config) -> None:
    write_text(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False))


def save_optimizer_state(optimizer, path: str | os.PathLike) -> None:
    import keras
    import numpy as np

    values = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
    with atomic_path(path) as tmp:
        np.savez(tmp, **values)


def load_optimizer_state(optimizer, path: str | os.PathLike) -> None:
    import numpy as np

    with np.load(path) as data:
        values = [data[k] for k in sorted(data.files)]
    if len(values) != len(optimizer.variables):
        raise ValueError(f"{path}: optimizer state has {len(values)} variables, the optimizer {len(optimizer.variables)}")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)
