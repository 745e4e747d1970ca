"""A training run's folder, ``<run.output_dir>/<run name>/``: the one place that names its files.

Like a keras-hub preset folder, a run folder is the trained model's artifact: training writes it, and
evaluate, predict, pseudo-label, export, the report and self-training read it, each through
:class:`RunFolder`, never by spelling a file name. What it holds:

* ``config.yaml``: the exact config of the run; ``model_info.json``: the run artifact
  (:mod:`landseg.runs.artifact`: model, class map, bands, size multiple, split, ...);
* ``best.keras`` (best validation mIoU), ``last.keras`` + ``last_optimizer.npz`` (the last completed
  epoch), ``state.json`` (resume state: epochs, best score, schedule, history, times), ``history.csv``;
* ``hist_reference.npy`` (histogram reference), ``raster_normalisation.json`` (raster bands and stretch);
* reports: ``per_class_iou.json`` / ``.md``, ``confusion_matrix.png``, ``predictions.png``,
  ``learning_curves.png``, ``lr_find.json`` / ``.png``; ``eval_<dataset>_<split>/`` from ``evaluate``;
* ``run.lock`` while a process trains in it (:mod:`landseg.runs.lock`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml


class RunFolder:
    """Paths and readers/writers of one run folder's files (see the module docstring)."""

    CONFIG = "config.yaml"
    INFO = "model_info.json"
    STATE = "state.json"
    BEST = "best.keras"
    LAST = "last.keras"
    OPTIMIZER = "last_optimizer.npz"
    HISTORY = "history.csv"
    LOCK = "run.lock"
    HIST_REFERENCE = "hist_reference.npy"
    RASTER_NORMALISATION = "raster_normalisation.json"
    PER_CLASS = "per_class_iou"  # .json and .md
    CONFUSION = "confusion_matrix.png"
    PREDICTIONS = "predictions.png"
    CURVES = "learning_curves.png"
    LR_FIND = "lr_find"  # .json and .png
    EVAL_PREFIX = "eval_"
    # any of these marks a folder a landseg run wrote (the rest of a run's files come later)
    MARKERS = (CONFIG, INFO, STATE, LOCK, BEST, LAST)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @classmethod
    def of_model(cls, model_path: str | os.PathLike) -> "RunFolder":
        """The run folder a saved model lives in (a folder given as such is taken as is)."""
        p = Path(model_path)
        return cls(p if p.is_dir() else p.parent)

    # ------------------------------------------------------------------ paths
    def file(self, name: str) -> Path:
        return self.path / name

    best = property(lambda self: self.path / self.BEST)
    last = property(lambda self: self.path / self.LAST)
    optimizer = property(lambda self: self.path / self.OPTIMIZER)
    history = property(lambda self: self.path / self.HISTORY)
    config_file = property(lambda self: self.path / self.CONFIG)
    info_file = property(lambda self: self.path / self.INFO)
    state_file = property(lambda self: self.path / self.STATE)
    lock_file = property(lambda self: self.path / self.LOCK)
    hist_reference = property(lambda self: self.path / self.HIST_REFERENCE)
    raster_normalisation = property(lambda self: self.path / self.RASTER_NORMALISATION)
    per_class_json = property(lambda self: self.path / f"{self.PER_CLASS}.json")
    per_class_md = property(lambda self: self.path / f"{self.PER_CLASS}.md")
    confusion = property(lambda self: self.path / self.CONFUSION)
    predictions = property(lambda self: self.path / self.PREDICTIONS)
    curves = property(lambda self: self.path / self.CURVES)
    lr_find_json = property(lambda self: self.path / f"{self.LR_FIND}.json")
    lr_find_png = property(lambda self: self.path / f"{self.LR_FIND}.png")

    def eval_dir(self, dataset: str, split: str) -> Path:
        """Where ``evaluate`` writes its report for this run by default."""
        return self.path / f"{self.EVAL_PREFIX}{dataset}_{split}"

    def eval_dirs(self) -> list[Path]:
        return sorted(p for p in self.path.glob(f"{self.EVAL_PREFIX}*") if p.is_dir())

    def model_files(self) -> list[Path]:
        return [self.best, self.last]

    # ------------------------------------------------------------------ what it is
    def is_run(self) -> bool:
        """Whether a landseg run wrote this folder (any of its marker files is there)."""
        return self.path.is_dir() and any((self.path / m).exists() for m in self.MARKERS)

    def is_foreign(self) -> bool:
        """Something no landseg run wrote (a file, or a non-empty folder without a run's files): never
        trained into."""
        if not self.path.is_dir():
            return True
        return any(self.path.iterdir()) and not self.is_run()

    def has_checkpoints(self) -> bool:
        return self.best.exists() or self.last.exists()

    # ------------------------------------------------------------------ state and config
    def read_state(self) -> dict | None:
        if not self.state_file.is_file():
            return None
        with open(self.state_file) as f:
            return json.load(f)

    def write_state(self, state: dict) -> None:
        from landseg.io_utils import write_json

        write_json(self.state_file, state)

    def read_config(self) -> dict | None:
        """The run's resolved config, or None when absent (read within :mod:`landseg.bounded_yaml`'s limits)."""
        if not self.config_file.is_file():
            return None
        from landseg.bounded_yaml import load_file

        return load_file(self.config_file)

    def write_config(self, config: dict) -> None:
        from landseg.io_utils import write_text

        write_text(self.config_file, yaml.safe_dump(config, sort_keys=False, default_flow_style=False))

    def copy_to(self, dest: str | os.PathLike) -> None:
        """Copy this run into ``dest`` while its owner may still be writing it (a non-chief worker
        resuming): the lock and in-flight temporary files are skipped, and a file that vanishes during
        the copy (a write probe, a temp file renamed away) is not an error. Saves are atomic renames,
        so each copied file is whole."""
        import shutil

        from landseg.io_utils import is_temp_name

        def skip(_folder, names):
            return [n for n in names if n == self.LOCK or is_temp_name(n)]

        def copy_if_present(src, dst):
            try:
                return shutil.copy2(src, dst)
            except FileNotFoundError:
                return dst

        shutil.copytree(self.path, dest, dirs_exist_ok=True, ignore=skip, copy_function=copy_if_present)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, model, improved: bool) -> None:
        """``last.keras`` (and, when ``improved``, ``best.keras``) plus the optimizer state, each atomically."""
        import shutil

        from landseg.io_utils import atomic_path

        with atomic_path(self.last) as tmp:
            model.save(tmp)
        if improved:  # the same model: copy the file instead of serialising it again (a 24M-parameter
            # UNet's .keras with its Adam state is ~290 MB: ~1.3 CPU-s to save, ~0.1 to copy)
            with atomic_path(self.best) as tmp:
                shutil.copyfile(self.last, tmp)
        self.save_optimizer_state(model.optimizer)

    def save_optimizer_state(self, optimizer) -> None:
        import keras
        import numpy as np

        from landseg.io_utils import atomic_path

        values = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
        with atomic_path(self.optimizer) as tmp:
            np.savez(tmp, **values)

    def load_optimizer_state(self, optimizer) -> None:
        """Restore the optimizer variables saved with ``last.keras`` (numbers only: no pickles are read)."""
        import numpy as np

        try:
            with np.load(self.optimizer, allow_pickle=False) as data:
                values = [data[k] for k in sorted(data.files)]
        except (ValueError, OSError) as e:
            raise ValueError(f"{self.optimizer}: not a readable optimizer state ({e})") from None
        if len(values) != len(optimizer.variables):
            raise ValueError(f"{self.optimizer}: optimizer state has {len(values)} variables, the optimizer "
                             f"{len(optimizer.variables)}")
        for var, value in zip(optimizer.variables, values):
            var.assign(value)
