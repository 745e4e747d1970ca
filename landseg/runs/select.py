"""Which run folder a training writes into, and how a killed run is found again.

The same command reaches the same folder (``<run.output_dir>/<run name>``), so a run killed mid-way
continues where it stopped instead of starting over; a finished run, a run of another config or a
user's folder is never written into: the run takes the next free name (``<name>-2``, ...).
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

from landseg.config import Config
from landseg.runs.folder import RunFolder

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


def choose_run_dir(config: Config) -> tuple[Path, dict | None]:
    """(run folder, resume state or None) for this config.

    ``train.resume_from`` names a folder to continue. Otherwise, with ``run.resume: auto``, the
    newest folder ``<name>``, ``<name>-2``, ... is continued when it holds an unfinished run of
    the same config; a finished or different run gets the next free name, never overwritten.
    """
    resume_from = config.train.resume_from
    if resume_from:
        run_dir = Path(resume_from)
        state = RunFolder(run_dir).read_state()
        if state is None:
            raise OutputError(f"{run_dir}: train.resume_from names a folder without a resumable run "
                              f"({RunFolder.STATE} missing)")
        return run_dir, state
    out = Path(config.run.output_dir)
    name = default_run_name(config)
    candidates = [out / name] + [out / f"{name}-{i}" for i in range(2, 10000)]
    existing = [d for d in candidates[:10000] if d.exists()] if out.is_dir() else []
    if existing:
        last = existing[-1]
        from landseg.runs.lock import held_by_other

        folder = RunFolder(last)
        if held_by_other(last) is not None:  # a live copy of this run: taking its lock is refused, naming it
            held = folder.read_state()        # (multi-worker: the chief holds it; workers follow its start)
            resumable = held is not None and not held.get("finished") and held.get("epochs_completed", 0) > 0
            return last, held if resumable else None
        state = folder.read_state()
        saved = folder.read_config()
        same = saved is None and state is None or comparable_config(saved or {}) == comparable_config(config)
        if config.run.resume == "auto" and same and not folder.is_foreign() and (state is None or not state.get("finished")):
            if state is not None and state.get("epochs_completed", 0) > 0:
                return last, state
            if not folder.has_checkpoints():  # killed before its first epoch ended: start again in the same folder
                return last, None
        idx = candidates.index(last)
        for d in candidates[idx + 1:]:
            if not d.exists():
                return d, None
    return candidates[0], None


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
