"""Dataset discovery: how each public dataset lays its files out, turned into (image, mask) pairs.

People keep datasets in the layout the publisher shipped. Rather than asking them to
reorganise, ``discover`` knows those layouts and lists labelled and unlabelled samples;
``split_samples`` makes a deterministic train/validation split (by ratio and seed, or by
group so that e.g. Dubai tiles or overlapping crops never straddle the split).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from landseg.data.errors import DataError
from landseg.data.formats import IMAGE_EXTENSIONS
from landseg.data.io import list_images, named_like_images

LAYOUTS = ("deepglobe", "dubai", "dida", "mmseg", "generic")

# dataset name -> (class map name, default layout)
DATASETS: dict[str, tuple[str, str]] = {
    "deepglobe": ("deepglobe", "deepglobe"),
    "dubai": ("dubai", "dubai"),
    "dida": ("dida", "dida"),
    "potsdam": ("potsdam", "mmseg"),
    "vaihingen": ("vaihingen", "mmseg"),
    "loveda": ("loveda", "mmseg"),
    "synthetic": ("synthetic", "generic"),
}


@dataclass(frozen=True)
class Sample:
    """One image and its mask (``None`` when unlabelled).

    ``group`` keeps related samples on one side of a split (Dubai tile, source scene).
    ``decoded=True`` means the mask already holds class indices (pseudo-labels, synthetic).
    """

    image: str
    mask: str | None
    group: str = ""
    decoded: bool = False

    @property
    def name(self) -> str:
        return Path(self.image).stem


@dataclass
class DatasetFiles:
    labelled: list[Sample] = field(default_factory=list)
    unlabelled: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. masks without an image

    def __len__(self) -> int:
        return len(self.labelled)


def _stem_map(files: list[str], suffix: str = "") -> dict[str, str]:
    out = {}
    for f in files:
        stem = Path(f).stem
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[: -len(suffix)]
        if stem in out:
            raise DataError(f, f"two files share the name {stem!r} ({Path(out[stem]).name} and {Path(f).name})")
        out[stem] = f
    return out


def _pair(images: dict[str, str], masks: dict[str, str], group: str, mask_dir: str,
          decoded: bool = False) -> DatasetFiles:
    out = DatasetFiles()
    for stem in sorted(images):
        mask = masks.get(stem)
        sample = Sample(images[stem], mask, group, decoded)
        (out.labelled if mask else out.unlabelled).append(sample)
    for stem in sorted(set(masks) - set(images)):
        out.notes.append(f"{masks[stem]}: mask without an image (ignored)")
    return out


def _masks_in(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return _stem_map(named_like_images(folder))


def _merge(parts: list[DatasetFiles]) -> DatasetFiles:
    out = DatasetFiles()
    for p in parts:
        out.labelled += p.labelled
        out.unlabelled += p.unlabelled
        out.notes += p.notes
    return out


def _deepglobe(root: Path) -> DatasetFiles:
    files = list_images(root)
    images = _stem_map(files, "_sat")
    if not images:
        raise DataError(root, "no DeepGlobe images (<id>_sat.jpg) in this folder")
    return _pair(images, _stem_map(files, "_mask"), "", str(root))


def _dubai(root: Path) -> DatasetFiles:
    tiles = sorted((p for p in root.iterdir() if p.is_dir() and (p / "images").is_dir()),
                   key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not tiles:
        raise DataError(root, "no Dubai tiles ('Tile N/images' + 'Tile N/masks') in this folder")
    return _merge([_pair(_stem_map(list_images(t / "images")), _masks_in(t / "masks"), t.name, str(t / "masks"))
                   for t in tiles])


def _two_folders(root: Path, image_dir: str, mask_dir: str, decoded: bool = False) -> DatasetFiles:
    if not (root / image_dir).is_dir():
        raise DataError(root, f"no {image_dir}/ folder here (expected {image_dir}/ + {mask_dir}/)")
    images = _stem_map(list_images(root / image_dir))
    return _pair(images, _masks_in(root / mask_dir), "", str(root / mask_dir), decoded)


def _mmseg(root: Path) -> DatasetFiles:
    """img_dir/ + ann_dir/, flat or with split sub-folders (train/, val/, ...)."""
    img, ann = root / "img_dir", root / "ann_dir"
    if not img.is_dir():
        raise DataError(root, "no img_dir/ folder here (expected img_dir/ + ann_dir/)")
    subs = sorted(p.name for p in img.iterdir() if p.is_dir())
    if subs and not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in img.iterdir() if p.is_file()):
        parts = []
        for s in subs:
            part = _pair(_stem_map(list_images(img / s)), _masks_in(ann / s), s, str(ann / s))
            parts.append(part)
        return _merge(parts)
    return _two_folders(root, "img_dir", "ann_dir")


def discover(data_dir: str | os.PathLike, layout: str, decoded: bool | None = None) -> DatasetFiles:
    """List labelled and unlabelled samples of ``data_dir`` in one of :data:`LAYOUTS`.

    ``decoded`` marks generic-layout masks as class indices already; by default it is
    True for a folder written by :mod:`landseg.data.synthetic` (it has ``synthetic.json``).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(root, "dataset folder does not exist")
    if layout == "deepglobe":
        return _deepglobe(root)
    if layout == "dubai":
        return _dubai(root)
    if layout == "dida":
        return _two_folders(root, "images", "labels")
    if layout == "mmseg":
        return _mmseg(root)
    if layout == "generic":
        if decoded is None:
            decoded = (root / "synthetic.json").is_file()
        return _two_folders(root, "images", "masks", decoded)
    raise ValueError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")


def dataset_info(name: str) -> tuple[str, str]:
    """(class map name, default layout) of a known dataset name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} "
                         "(or give a layout and a class map)")
    return DATASETS[name]


def resolve_dataset(name: str, *, layout: str | None = None, classmap: str | None = None) -> tuple[str, str]:
    """(class map, layout) of a dataset name: the one place that maps a dataset to its class map and
    layout. An explicit ``layout`` / ``classmap`` wins; ``synthetic`` is the built-in generator's
    generic-layout folder; a name that is no dataset is taken as a class map and needs ``layout``."""
    if name == "synthetic":
        default_cm, default_layout = "synthetic", "generic"
    elif name in DATASETS:
        default_cm, default_layout = DATASETS[name]
    elif layout is not None:
        default_cm, default_layout = name, layout
    else:
        dataset_info(name)  # raises with the known names
    return classmap or default_cm, layout or default_layout


def resolve_classmap(name_or_path):
    """The :class:`~landseg.classmaps.ClassMap` of a dataset name, class map name or class map file."""
    from landseg.classmaps import get_classmap

    if isinstance(name_or_path, str) and (name_or_path in DATASETS or name_or_path == "synthetic"):
        return get_classmap(resolve_dataset(name_or_path)[0])
    return get_classmap(name_or_path)


def scene_of(sample: Sample) -> str:
    """The scene group a sample belongs to in splits and cross-validation: its group (a Dubai tile, an
    MMSegmentation sub-folder), else its own image (a DeepGlobe scene is one image)."""
    return sample.group or Path(sample.image).stem


def split_samples(samples, val_fraction: float = 0.2, seed: int = 0, by_group: bool = False,
                  val_groups=None):
    """Deterministic (train, val) split: shuffle with ``seed``, take ``val_fraction`` for validation.

    With ``by_group`` whole scene groups (:func:`scene_of`) go to one side (needs at least two), so
    neighbouring crops of one scene cannot leak from training into validation. ``val_groups`` names
    the validation groups outright (a cross-validation fold). The result does not depend on the input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    samples = sorted(samples, key=lambda s: (s.group, s.image))
    if not samples:
        return [], []
    if val_groups:
        return _split_by_names(samples, list(val_groups))
    rng = random.Random(seed)
    if by_group:
        groups = sorted({scene_of(s) for s in samples})
        if len(groups) < 2:
            raise ValueError(f"split by group needs at least 2 groups, found {groups}")
        rng.shuffle(groups)
        n_val = min(len(groups) - 1, max(1, round(val_fraction * len(groups)))) if val_fraction > 0 else 0
        chosen = set(groups[:n_val])
        return ([s for s in samples if scene_of(s) not in chosen], [s for s in samples if scene_of(s) in chosen])
    order = list(range(len(samples)))
    rng.shuffle(order)
    n_val = round(val_fraction * len(samples))
    if val_fraction > 0 and len(samples) >= 2:
        n_val = min(len(samples) - 1, max(1, n_val))
    val_idx = set(order[:n_val])
    return ([s for i, s in enumerate(samples) if i not in val_idx], [s for i, s in enumerate(samples) if i in val_idx])


def _split_by_names(samples, val_groups: list[str]):
    """(train, val) with exactly the scene groups ``val_groups`` in validation; unknown names are an error."""
    groups = sorted({scene_of(s) for s in samples})
    unknown = sorted(set(val_groups) - set(groups))
    if unknown:
        raise ValueError(f"data.val_groups: {unknown} are not scene groups of this dataset; its groups: "
                         f"{', '.join(groups[:20])}{' ...' if len(groups) > 20 else ''}")
    val = [s for s in samples if scene_of(s) in set(val_groups)]
    train = [s for s in samples if scene_of(s) not in set(val_groups)]
    if not train:
        raise ValueError("data.val_groups holds every scene group: nothing is left to train on")
    return train, val
