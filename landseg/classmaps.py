"""Class maps: the one definition of each dataset's classes, colours and ignore value.

Every stage (data check, pipeline, losses, metrics, plots, prediction PNGs) reads the
classes from here, so a dataset's meaning is written down exactly once.

Masks come in three kinds:

* ``rgb``: colour-coded masks (DeepGlobe, Dubai). Each learned class has a palette
  colour; ``ignore_colors`` mean "no label"; ``binarize`` thresholds each channel first
  (DeepGlobe's JPEG-era masks are not exactly 0/255).
* ``index``: class-index PNGs (ISPRS via MMSegmentation, LoveDA). ``index_values`` are the
  raw values of the classes in order (default 0, 1, ..., n-1); ``ignore_values`` mean "no label".
* ``grey``: binary masks as grey levels (dida roofs); ``>= grey_threshold`` is class 1.

Decoded masks are ``uint8`` class indices ``0..C-1`` with ``ignore_index`` (255) for
pixels that carry no label. Unknown colours or values raise :class:`UnknownMaskValuesError`
naming them, never a silent guess.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

IGNORE_INDEX = 255
MAX_CLASSES = IGNORE_INDEX  # class indices 0..254 fit a uint8 mask beside the ignore value
MASK_KINDS = ("rgb", "index", "grey")
# Row names in a Kaggle ``class_dict.csv`` that mean "no label" rather than a class.
DEFAULT_IGNORE_NAMES = ("unknown", "unlabeled", "unlabelled", "no_data", "nodata", "ignore")


class UnknownMaskValuesError(ValueError):
    """A mask holds colours/values the class map does not define."""

    def __init__(self, message: str, values: Sequence, counts: Sequence[int]):
        super().__init__(message)
        self.values = list(values)
        self.counts = [int(c) for c in counts]


def hex_to_rgb(code: str) -> tuple[int, int, int]:
    code = code.lstrip("#")
    if len(code) != 6:
        raise ValueError(f"colour {code!r} is not a #RRGGBB hex code")
    return tuple(int(code[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*(int(c) for c in rgb))


def _rgb_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class ClassMap:
    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    mask_kind: str
    ignore_colors: tuple[tuple[int, int, int], ...] = ()
    binarize: int | None = None
    index_values: tuple[int, ...] | None = None
    ignore_values: tuple[int, ...] = ()
    grey_threshold: int | None = None
    ignore_index: int = IGNORE_INDEX
    ignore_color: tuple[int, int, int] = (0, 0, 0)
    description: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "palette", tuple(tuple(int(v) for v in c) for c in self.palette))
        object.__setattr__(self, "ignore_colors", tuple(tuple(int(v) for v in c) for c in self.ignore_colors))
        object.__setattr__(self, "ignore_values", tuple(int(v) for v in self.ignore_values))
        object.__setattr__(self, "ignore_color", tuple(int(v) for v in self.ignore_color))
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.index_values is not None:
            object.__setattr__(self, "index_values", tuple(int(v) for v in self.index_values))
        elif self.mask_kind == "index":  # class i is stored as value i unless the map says otherwise
            object.__setattr__(self, "index_values", tuple(range(len(self.class_names))))
        self._validate()

    def _validate(self) -> None:
        where = f"class map {self.name!r}"
        if self.mask_kind not in MASK_KINDS:
            raise ValueError(f"{where}: mask_kind {self.mask_kind!r} is not one of {MASK_KINDS}")
        if len(self.class_names) < 2:
            raise ValueError(f"{where}: needs at least 2 classes, got {list(self.class_names)}")
        if len(self.class_names) > MAX_CLASSES:
            raise ValueError(f"{where}: has {len(self.class_names)} classes; at most {MAX_CLASSES} fit, because masks "
                             f"store class indices as 8-bit values 0..{MAX_CLASSES - 1} and {IGNORE_INDEX} marks 'no label'")
        blank = [i for i, n in enumerate(self.class_names) if not isinstance(n, str) or not n.strip()]
        if blank:
            raise ValueError(f"{where}: class {blank[0]} has an empty name; every class needs a name (it labels the "
                             "per-class scores and the training log)")
        seen: dict[str, int] = {}
        for i, n in enumerate(self.class_names):
            if n in seen:
                raise ValueError(f"{where}: two classes are named {n!r} (classes {seen[n]} and {i}); class names must "
                                 "differ, or one's scores would hide the other's")
            seen[n] = i
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"{where}: {len(self.class_names)} class names but {len(self.palette)} palette colours")
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in self.palette + self.ignore_colors):
            raise ValueError(f"{where}: colours must be (r, g, b) with values 0-255")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(self.class_names):
            raise ValueError(f"{where}: ignore_index {self.ignore_index} must be in {len(self.class_names)}..255")
        if self.mask_kind == "rgb":
            colours = self.palette + self.ignore_colors
            if len(set(colours)) != len(colours):
                raise ValueError(f"{where}: palette and ignore colours must all differ")
            if self.binarize is not None:
                bad = [c for c in colours if any(v not in (0, 255) for v in c)]
                if bad:
                    raise ValueError(f"{where}: with binarize, colours must be 0/255 per channel, not {bad}")
        if self.mask_kind == "index":
            if self.index_values is None or len(self.index_values) != len(self.class_names):
                raise ValueError(f"{where}: index masks need one index value per class")
            raw = self.index_values + self.ignore_values
            if len(set(raw)) != len(raw) or not all(0 <= v <= 255 for v in raw):
                raise ValueError(f"{where}: index and ignore values must be distinct and in 0..255")
        if self.mask_kind == "grey":
            if len(self.class_names) != 2 or self.grey_threshold is None:
                raise ValueError(f"{where}: grey masks are binary and need grey_threshold")

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def palette_array(self) -> np.ndarray:
        """(256, 3) uint8 lookup: class index -> colour, ignore and unused -> ignore_color."""
        lut = np.tile(np.asarray(self.ignore_color, np.uint8), (256, 1))
        lut[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return lut

    def raw_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, classes): sorted raw keys (rgb keys or index values) and what each decodes to.

        Shared by :meth:`decode_mask` and the ``tf.data`` decoder so both agree exactly.
        """
        if self.mask_kind == "rgb":
            keys = list(_rgb_keys(np.asarray(self.palette, np.uint8)))
            keys += list(_rgb_keys(np.asarray(self.ignore_colors, np.uint8).reshape(-1, 3)))
        elif self.mask_kind == "index":
            keys = list(self.index_values) + list(self.ignore_values)
        else:
            keys = list(range(256))
        if self.mask_kind == "grey":
            classes = [int(v >= self.grey_threshold) for v in keys]
        else:
            classes = list(range(self.num_classes)) + [self.ignore_index] * (len(keys) - self.num_classes)
        order = np.argsort(keys)
        return np.asarray(keys, np.int64)[order], np.asarray(classes, np.uint8)[order]

    # ------------------------------------------------------------------ conversions
    def raw_keys(self, raw: np.ndarray) -> np.ndarray:
        """Reduce a raw mask to one integer per pixel (rgb key or index/grey value)."""
        raw = np.asarray(raw)
        if self.mask_kind == "rgb":
            if raw.ndim != 3 or raw.shape[-1] != 3:
                raise ValueError(f"class map {self.name!r} expects RGB masks (H, W, 3), got shape {raw.shape}")
            if self.binarize is not None:
                raw = np.where(raw >= self.binarize, 255, 0).astype(np.uint8)
            return _rgb_keys(raw)
        if raw.ndim == 3 and raw.shape[-1] in (3, 4) and np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 0], raw[..., 2]):
            raw = raw[..., 0]  # a grey mask saved as RGB(A)
        if raw.ndim != 2:
            raise ValueError(f"class map {self.name!r} expects single-band masks (H, W), got shape {raw.shape}")
        return raw.astype(np.int64)

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """Raw mask -> (uint8 class indices, {unknown value: pixel count}); unknown values become
        ``ignore_index``. The one decoder: :meth:`decode_mask` and the data readers build on it."""
        keys = self.raw_keys(raw)
        table_keys, table_classes = self.raw_lookup()
        pos = np.clip(np.searchsorted(table_keys, keys), 0, len(table_keys) - 1)
        known = table_keys[pos] == keys
        mask = table_classes[pos].astype(np.uint8)
        if known.all():
            return mask, {}
        values, counts = np.unique(keys[~known], return_counts=True)
        order = np.argsort(-counts, kind="stable")
        mask[~known] = self.ignore_index
        return mask, {self.format_raw(v): int(c) for v, c in zip(values[order], counts[order])}

    def unknown_values_error(self, unknown: dict[str, int], source: str | os.PathLike | None = None):
        """The error for mask values this map does not define, largest first (at most 10 shown)."""
        shown = list(unknown.items())[:10]
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        where = f"{source}: " if source is not None else ""
        return UnknownMaskValuesError(
            f"{where}{sum(unknown.values())} pixels have mask values that class map {self.name!r} does not "
            f"define: {', '.join(f'{v} ({c} px)' for v, c in shown)}{more}",
            list(unknown), np.asarray(list(unknown.values())),
        )

    def decode_mask(self, raw: np.ndarray, source: str | os.PathLike | None = None) -> np.ndarray:
        """Raw mask -> uint8 class indices with ``ignore_index`` for unlabelled pixels; a value the
        map does not define raises :class:`UnknownMaskValuesError` naming ``source``."""
        mask, unknown = self.decode(raw)
        if unknown:
            raise self.unknown_values_error(unknown, source)
        return mask

    def format_raw(self, key: int) -> str:
        if self.mask_kind == "rgb":
            key = int(key)
            return rgb_to_hex(((key >> 16) & 255, (key >> 8) & 255, key & 255))
        return str(int(key))

    def encode_rgb(self, index_mask: np.ndarray) -> np.ndarray:
        """Class indices -> (H, W, 3) uint8 colours in this dataset's palette."""
        index_mask = np.asarray(index_mask)
        if index_mask.min(initial=0) < 0 or index_mask.max(initial=0) > 255:
            raise ValueError("class indices must lie in 0..255")
        return self.palette_array()[index_mask.astype(np.uint8)]

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["palette"] = [rgb_to_hex(c) for c in self.palette]
        d["ignore_colors"] = [rgb_to_hex(c) for c in self.ignore_colors]
        d["ignore_color"] = rgb_to_hex(self.ignore_color)
        for key in ("class_names", "ignore_values", "notes"):
            d[key] = list(d[key])
        if d["index_values"] is not None:
            d["index_values"] = list(d["index_values"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassMap":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown class map keys {sorted(unknown)}; valid keys: {sorted(known)}")
        d = dict(d)

        def colour(c):
            return hex_to_rgb(c) if isinstance(c, str) else tuple(c)

        for key in ("palette", "ignore_colors"):
            if key in d:
                d[key] = tuple(colour(c) for c in d[key])
        if "ignore_color" in d:
            d["ignore_color"] = colour(d["ignore_color"])
        return cls(**d)


# ---------------------------------------------------------------------- built-in maps
_ISPRS_NAMES = ("impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter")
_ISPRS_PALETTE = ((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0))

BUILTIN: dict[str, ClassMap] = {
    "deepglobe": ClassMap(
        name="deepglobe",
        class_names=("urban_land", "agriculture_land", "rangeland", "forest_land", "water", "barren_land"),
        palette=((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255)),
        mask_kind="rgb",
        ignore_colors=((0, 0, 0),),
        binarize=128,
        description="DeepGlobe 2018 land cover; channels binarized at 128; 'unknown' (black) is ignored",
    ),
    "dubai": ClassMap(
        name="dubai",
        class_names=("building", "land", "road", "vegetation", "water"),
        palette=tuple(hex_to_rgb(h) for h in ("#3C1098", "#8429F6", "#6EC1E4", "#FEDD3A", "#E2A929")),
        mask_kind="rgb",
        ignore_colors=(hex_to_rgb("#9B9B9B"),),
        description="Dubai aerial imagery (Humans in the Loop); colours from the dataset's description, "
        "not from its classes.json (whose colours the masks do not use). 'Unlabeled' (#9B9B9B) is not land "
        "cover: it is no label here; the class map 'dubai6' learns it as a sixth class",
    ),
    "dubai6": ClassMap(
        name="dubai6",
        class_names=("building", "land", "road", "vegetation", "water", "unlabeled"),
        palette=tuple(hex_to_rgb(h) for h in ("#3C1098", "#8429F6", "#6EC1E4", "#FEDD3A", "#E2A929", "#9B9B9B")),
        mask_kind="rgb",
        description="Dubai aerial imagery with 'unlabeled' (#9B9B9B) learned as a sixth class",
    ),
    "dida": ClassMap(
        name="dida",
        class_names=("background", "roof"),
        palette=((0, 0, 0), (255, 255, 255)),
        mask_kind="grey",
        grey_threshold=128,
        ignore_color=(255, 0, 255),
        description="dida roofs: anti-aliased grey masks, >= 128 is roof",
    ),
    "potsdam": ClassMap(
        name="potsdam",
        class_names=_ISPRS_NAMES,
        palette=_ISPRS_PALETTE,
        mask_kind="index",
        index_values=(1, 2, 3, 4, 5, 6),
        ignore_values=(0,),
        description="ISPRS Potsdam as written by MMSegmentation's converter: 0 = no label",
    ),
    "vaihingen": ClassMap(
        name="vaihingen",
        class_names=_ISPRS_NAMES,
        palette=_ISPRS_PALETTE,
        mask_kind="index",
        index_values=(1, 2, 3, 4, 5, 6),
        ignore_values=(0,),
        description="ISPRS Vaihingen (IR-R-G) as written by MMSegmentation's converter: 0 = no label",
    ),
    "loveda": ClassMap(
        name="loveda",
        class_names=("background", "building", "road", "water", "barren", "forest", "agriculture"),
        palette=((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183), (0, 255, 0), (255, 195, 128)),
        mask_kind="index",
        index_values=(1, 2, 3, 4, 5, 6, 7),
        ignore_values=(0,),
        description="LoveDA: 1-7 classes, 0 = no data",
    ),
    "synthetic": ClassMap(
        name="synthetic",
        class_names=("agriculture", "forest", "water", "road", "building", "bare_ground"),
        palette=((236, 214, 104), (34, 139, 34), (30, 100, 200), (128, 128, 128), (200, 40, 40), (181, 140, 98)),
        mask_kind="index",
        index_values=(0, 1, 2, 3, 4, 5),
        description="landseg's procedural land-cover scenes (landseg.data.synthetic)",
    ),
}


def available_classmaps() -> list[str]:
    return sorted(BUILTIN)


def load_classmap(path: str | os.PathLike, ignore_names: Iterable[str] = DEFAULT_IGNORE_NAMES) -> ClassMap:
    """Read a user class map: YAML with :class:`ClassMap` keys, or a Kaggle ``class_dict.csv``."""
    from landseg.io_utils import file_problem

    path = os.fspath(path)
    problem = file_problem(path, allow_empty=True)
    if problem == "file does not exist":
        raise FileNotFoundError(f"class map file {path} does not exist")
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return _load_classmap_file(path, name, ignore_names)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the class map ({e.strerror or e})") from None
    except ValueError as e:  # a ClassMap check: name the file
        if path in str(e):
            raise
        raise ValueError(f"{path}: {e}") from None


def _load_classmap_file(path: str, name: str, ignore_names: Iterable[str]) -> ClassMap:
    from landseg.bounded_yaml import MAX_BYTES

    if os.path.getsize(path) > MAX_BYTES:
        raise ValueError(f"{path}: refused: {os.path.getsize(path):,} bytes, more than a class map can be "
                         f"({MAX_BYTES:,})")
    if path.lower().endswith(".csv"):
        import csv as _csv

        try:
            return _classmap_from_csv(path, name, {n.lower() for n in ignore_names})
        except _csv.Error as e:
            raise ValueError(f"{path}: not a valid CSV file ({e})") from None
    if path.lower().endswith((".yaml", ".yml")):
        import yaml

        from landseg import bounded_yaml

        try:
            data = bounded_yaml.load_file(path)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            raise ValueError(f"{path}: not valid YAML: {where}{getattr(e, 'problem', None) or e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a class map YAML must be a mapping of ClassMap keys")
        data.setdefault("name", name)
        try:
            return ClassMap.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from e
    raise ValueError(f"{path}: class maps are .yaml/.yml or class_dict.csv files")


def _classmap_from_csv(path: str, name: str, ignore_names: set[str]) -> ClassMap:
    with open(path, newline="", encoding="utf-8-sig") as f:  # a byte-order mark (Excel's UTF-8 CSV) is not a name
        rows = list(csv.DictReader(f, skipinitialspace=True))
    rows = [{(k or "").strip().lower(): v for k, v in r.items()} for r in rows]
    if not rows or not {"name", "r", "g", "b"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a header 'name,r,g,b' and one row per class")
    names, palette, ignore = [], [], []
    for i, row in enumerate(rows, start=2):
        try:
            rgb = tuple(int(row[k]) for k in ("r", "g", "b"))
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {i}: r, g, b must be integers, got {row}") from None
        class_name = (row.get("name") or "").strip()
        if class_name.lower().replace(" ", "_") in ignore_names:
            ignore.append(rgb)
        else:
            names.append(class_name)
            palette.append(rgb)
    binarize = 128 if all(v in (0, 255) for c in palette + ignore for v in c) else None
    return ClassMap(name=name, class_names=tuple(names), palette=tuple(palette), mask_kind="rgb",
                    ignore_colors=tuple(ignore), binarize=binarize, description=f"from {path}")


def get_classmap(name_or_path: str | os.PathLike | ClassMap) -> ClassMap:
    """A built-in class map by name, or a user's from a YAML / class_dict.csv path."""
    if isinstance(name_or_path, ClassMap):
        return name_or_path
    key = os.fspath(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key]
    if key.lower().endswith((".csv", ".yaml", ".yml")):
        return load_classmap(key)
    raise ValueError(f"unknown class map {key!r}; built-in: {', '.join(available_classmaps())}, "
                     "or give a path to a class map .yaml or class_dict.csv")
