"""The pseudo-label folder layout: ``summary.json`` + ``masks/<stem>.png`` (class indices, ignore value
where the ensemble was not confident), written by :mod:`landseg.inference.pseudolabel` and read
here as training samples (config key ``data.pseudo_label_dirs``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from landseg.data.errors import DataError
from landseg.data.layouts import Sample

SUMMARY = "summary.json"
MASKS = "masks"


def read_summary(folder: str | os.PathLike) -> dict:
    """The ``summary.json`` of a pseudo-label folder; :class:`DataError` when there is none."""
    summary_path = Path(folder) / SUMMARY
    if not summary_path.is_file():
        raise DataError(str(summary_path), "no pseudo-label summary here; is this a folder written by landseg.pseudolabel?")
    with open(summary_path) as f:
        return json.load(f)


def load_pseudo_labelled(folder: str | os.PathLike) -> list[Sample]:
    """Training samples (``decoded=True``) of a folder written by ``landseg.pseudolabel``.

    Images are found through ``summary.json``'s ``images_dir`` (an absolute path) and the image
    file names it lists; an image or mask that has gone missing is an error naming it.
    """
    folder = Path(folder)
    summary = read_summary(folder)
    images_dir = Path(summary["images_dir"])
    samples = []
    for entry in summary["images"]:
        image = images_dir / entry["image"]
        mask = folder / entry["mask"]
        for p, what in ((image, "image"), (mask, "pseudo-label mask")):
            if not p.is_file():
                raise DataError(str(p), f"{what} listed in {folder / SUMMARY} is missing")
        samples.append(Sample(str(image), str(mask), group=f"pseudo:{image.stem}", decoded=True))
    return samples
