"""The run artifact: everything a later stage needs from a training run, written once by training
(:attr:`RunFolder.INFO` in the run folder, beside its checkpoints) and read by ``evaluate``,
``predict``, ``pseudolabel``, ``export`` and ``self_train`` through :func:`load_run`, so no stage
re-derives a fact of the run:

* the class map (names, colours, ignore value) and how unknown mask colours were treated
  (``unknown_mask_values``: ``error`` or ``ignore``),
* the model name and options, input bands and the model's size multiple,
* the histogram reference file (or none), the input normalisation and the raster band settings,
* the train / validation split: its parameters and both file lists,
* the run's resolved config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from landseg.io_utils import write_json
from landseg.runs.folder import RunFolder
# How uint8 images become model input (landseg.data.preprocess.prepare_image and the tf.data pipeline).
NORMALISATION = "uint8 / 255 -> float32 [0, 1], after histogram matching to hist_reference when set"
UNKNOWN_MASK_MODES = ("error", "ignore")


def _sample_dict(s) -> dict:
    return {"image": os.path.abspath(s.image), "mask": os.path.abspath(s.mask) if s.mask else None,
            "group": s.group, "decoded": bool(s.decoded)}


def split_record(train, val, *, val_fraction: float, seed: int, by_group: bool, val_groups=()) -> dict:
    """The split as stored in the run: parameters and both file lists (absolute paths)."""
    return {"val_fraction": float(val_fraction), "seed": int(seed), "by_group": bool(by_group),
            "val_groups": list(val_groups or []),
            "train": [_sample_dict(s) for s in train], "val": [_sample_dict(s) for s in val]}


@dataclass
class RunArtifact:
    """A training run as later stages see it (see the module docstring)."""

    folder: Path
    model: str
    model_options: dict
    classmap: object  # landseg.classmaps.ClassMap
    bands: int
    size_multiple: int
    unknown_mask_values: str = "error"
    hist_reference: str | None = None  # absolute path of the saved reference, or None
    normalisation: str = NORMALISATION
    split: dict | None = None
    config_file: str | None = None  # absolute path of the run's config
    raw: dict = field(default_factory=dict)

    @property
    def unknown_to_ignore(self) -> bool:
        return self.unknown_mask_values == "ignore"

    @property
    def run_folder(self) -> RunFolder:
        return RunFolder(self.folder)

    def config(self) -> dict | None:
        """The run's resolved config, or None when absent."""
        if not self.config_file or not os.path.isfile(self.config_file):
            return None
        from landseg.bounded_yaml import load_file

        return load_file(self.config_file)

    def raster_normalisation_file(self) -> Path | None:
        """The raster band selection and stretch the run trained with, or None (plain 8-bit pictures)."""
        path = self.run_folder.raster_normalisation
        return path if path.is_file() else None

    def load_hist_reference(self):
        if not self.hist_reference:
            return None
        from landseg.data.histogram import load_reference

        return load_reference(self.hist_reference)

    def split_samples(self, which: str = "val") -> list | None:
        """The training run's ``train`` or ``val`` samples, or None when the run did not record them."""
        if not self.split or which not in self.split:
            return None
        from landseg.data.layouts import Sample

        return [Sample(d["image"], d["mask"], group=d.get("group") or "", decoded=bool(d.get("decoded")))
                for d in self.split[which]]


def save_run(run_dir: str | os.PathLike, *, model: str, model_options: dict, classmap, bands: int,
             size_multiple: int, hist_reference: bool = False, unknown_mask_values: str = "error",
             split: dict | None = None) -> dict:
    """Write the run artifact into ``run_dir``; ``hist_reference``: whether the run saved one
    (:attr:`RunFolder.hist_reference`)."""
    if unknown_mask_values not in UNKNOWN_MASK_MODES:
        raise ValueError(f"unknown_mask_values must be one of {', '.join(UNKNOWN_MASK_MODES)}, "
                         f"got {unknown_mask_values!r}")
    info = {
        "model": model,
        "model_options": dict(model_options),
        "classmap": classmap.to_dict(),
        "unknown_mask_values": unknown_mask_values,
        "hist_reference": RunFolder.HIST_REFERENCE if hist_reference else None,
        "normalisation": NORMALISATION,
        "bands": int(bands),
        "size_multiple": int(size_multiple),
        "config": RunFolder.CONFIG,
        "split": split,
    }
    write_json(RunFolder(run_dir).info_file, info)
    return info


def load_run(path: str | os.PathLike) -> RunArtifact | None:
    """The run artifact of a run folder or of a model file in one; None when there is none.

    Relative file entries (``hist_reference``, ``config``) are resolved against that folder.
    """
    from landseg.classmaps import ClassMap

    folder = RunFolder.of_model(path).path
    file = RunFolder(folder).info_file
    if not file.is_file():
        return None
    with open(file) as f:
        info = json.load(f)

    def resolve(key):
        return str((folder / info[key]).resolve()) if info.get(key) else None

    return RunArtifact(
        folder=folder.resolve(),
        model=info.get("model", ""),
        model_options=dict(info.get("model_options") or {}),
        classmap=ClassMap.from_dict(info["classmap"]),
        bands=int(info.get("bands") or 3),
        size_multiple=int(info.get("size_multiple") or 1),
        unknown_mask_values=info.get("unknown_mask_values", "error"),
        hist_reference=resolve("hist_reference"),
        normalisation=info.get("normalisation", NORMALISATION),
        split=info.get("split"),
        config_file=resolve("config"),
        raw=info,
    )
