"""Data check: read every file of a dataset and report what would make training wrong.

Public datasets ship with quirks their documentation does not mention (palette PNG
masks among RGB ones, stray colours, duplicated labels, RGBA images). Training
silently on such data gives a model that is wrong in ways no metric explains, so this
reads *every* file, decodes every mask with the class map, and lists each problem with
its file. Errors (exit code 1) are things that make training wrong or impossible;
warnings are things a user should know about but that landseg handles.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landseg.classmaps import ClassMap, get_classmap, rgb_to_hex
from landseg.data.errors import DataError
from landseg.data.io import decode_mask_array, read_mask_raw, read_raw
from landseg.data.layouts import DatasetFiles, Sample, discover

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Problem:
    severity: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.path}: {self.message}"


@dataclass
class Report:
    data_dir: str
    classmap: ClassMap
    layout: str
    pairs: int = 0
    unlabelled: int = 0
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ignored_pixels: int = 0
    unknown_colours: Counter = field(default_factory=Counter)  # value -> pixels (all files)
    unknown_files: Counter = field(default_factory=Counter)  # value -> number of files
    raw_values: Counter = field(default_factory=Counter)  # index/grey masks: value -> pixels
    class_image_sum: np.ndarray | None = None  # per-class sum of image colours (mean colour sanity check)
    mask_modes: Counter = field(default_factory=Counter)
    image_modes: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    unknown_to_ignore: bool = False
    off_binary: int = 0  # rgb masks with binarize: pixels whose colour is not pure 0/255

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors and self.pairs > 0

    def to_dict(self) -> dict:
        total = int(self.class_counts.sum()) + self.ignored_pixels
        return {"data_dir": self.data_dir, "classmap": self.classmap.name, "layout": self.layout,
                "pairs": self.pairs, "unlabelled": self.unlabelled,
                "class_pixels": {n: int(c) for n, c in zip(self.classmap.class_names, self.class_counts)},
                "ignored_pixels": self.ignored_pixels, "total_pixels": total,
                "unknown_colours": dict(self.unknown_colours.most_common()),
                "mask_modes": dict(self.mask_modes), "image_modes": dict(self.image_modes),
                "problems": [p.__dict__ for p in self.problems], "ok": self.ok}


# ---------------------------------------------------------------------- per-file checks
@dataclass
class _FileResult:
    sample: Sample
    problems: list[Problem] = field(default_factory=list)
    image_mode: str = ""
    mask_mode: str = ""
    image_hash: str = ""
    mask_hash: str = ""
    mask_classes: int = 0
    off_binary: int = 0
    counts: np.ndarray | None = None
    unknown: dict = field(default_factory=dict)
    raw_values: dict = field(default_factory=dict)
    class_image_sum: np.ndarray | None = None


def _describe_raster(path: str, res: _FileResult):
    """GeoTIFF / GDAL images: any band count and data type (stretched by data.normalisation)."""
    from landseg.data.raster import open_raster

    try:
        with open_raster(path) as ds:
            raw = np.moveaxis(ds.read(), 0, -1)
            valid = np.any(ds.read_masks() > 0, axis=0)
            crs = ds.crs
    except DataError as e:
        res.problems.append(Problem(ERROR, path, e.problem))
        return None
    except Exception as e:  # noqa: BLE001 - GDAL errors of broken files
        res.problems.append(Problem(ERROR, path, f"unreadable raster ({type(e).__name__}: {e})"))
        return None
    res.image_mode = f"raster {raw.shape[-1]}x{raw.dtype}" + ("" if crs is None else f" {crs}")
    res.image_hash = hashlib.sha1(raw.tobytes() + str(raw.shape).encode()).hexdigest()
    if raw.dtype != np.uint8:
        res.problems.append(Problem(INFO, path, f"{raw.shape[-1]}-band {raw.dtype} raster: stretched to 8 bits per band "
                                    "by data.normalisation (band statistics)"))
    nodata = int((~valid).sum())
    if nodata:
        res.problems.append(Problem(INFO, path, f"{nodata} nodata px ({100 * nodata / valid.size:.1f}%): no label"))
    return raw


def _describe_image(path: str, res: _FileResult):
    from landseg.data.raster import use_rasterio

    if use_rasterio(path):
        return _describe_raster(path, res)
    try:
        raw, mode = read_raw(path)
    except DataError as e:
        res.problems.append(Problem(ERROR, path, e.problem))
        return None
    res.image_mode = f"{mode} {raw.dtype}" if raw.dtype != np.uint8 else mode
    res.image_hash = hashlib.sha1(raw.tobytes() + str(raw.shape).encode()).hexdigest()
    if raw.dtype != np.uint8:
        hi = int(raw.max()) if raw.size else 0
        sev = ERROR if hi > 255 else WARNING
        res.problems.append(Problem(sev, path, f"{raw.dtype} image (max value {hi}); landseg reads 8-bit images"
                                    + (": convert it first" if hi > 255 else "")))
    if mode in ("L", "I;16", "I", "F", "1") or raw.ndim == 2:
        res.problems.append(Problem(WARNING, path, f"grey-scale image (mode {mode}): 1 band, models expect 3"))
    if mode in ("RGBA", "LA") and raw.ndim == 3:
        alpha = raw[..., -1]
        transparent = int((alpha < 255).sum())
        note = (f"{transparent} px ({100 * transparent / alpha.size:.1f}%) are not fully opaque; the alpha band is "
                "dropped and those pixels' colours are used as they are") if transparent else "fully opaque; dropped"
        res.problems.append(Problem(WARNING, path, f"{mode} image has an alpha band: {note}"))
    if mode == "P":
        res.problems.append(Problem(INFO, path, "palette image: read as RGB through its palette"))
    if raw.ndim == 2:
        raw = raw[..., None]
    return raw


def _check_sample(sample: Sample, cm: ClassMap, unknown_to_ignore: bool) -> _FileResult:
    res = _FileResult(sample)
    image = _describe_image(sample.image, res)
    if sample.mask is None:
        return res
    path = sample.mask
    invalid = None
    try:
        if path.lower().endswith((".tif", ".tiff")):
            from landseg.data.raster import mask_nodata, open_raster

            invalid = mask_nodata(path)
        if invalid is not None:  # a class raster with nodata: those pixels are "no label"
            with open_raster(path) as ds:
                raw = ds.read(1)
            mode = "raster"
            if invalid.any() and not invalid.all():
                raw = np.where(invalid, raw[~invalid][0], raw)
                res.problems.append(Problem(INFO, path, f"{int(invalid.sum())} nodata px: no label"))
            raw = np.clip(raw, 0, 255).astype(np.uint8) if raw.dtype != np.uint8 else raw
        elif sample.decoded:
            raw, mode = read_raw(path)
        else:
            raw = read_mask_raw(path, cm)
            mode = _pil_mode(path)
    except DataError as e:
        res.problems.append(Problem(ERROR, path, e.problem))
        return res
    except ValueError as e:
        res.problems.append(Problem(ERROR, path, str(e)))
        return res
    res.mask_mode = mode
    if mode == "P" and cm.mask_kind == "rgb":
        res.problems.append(Problem(INFO, path, "palette (P-mode) PNG mask: decoded through its palette colours"))
    res.mask_hash = hashlib.sha1(np.ascontiguousarray(raw).tobytes() + str(raw.shape).encode()).hexdigest()
    if image is not None and image.shape[:2] != raw.shape[:2]:
        res.problems.append(Problem(ERROR, path, f"mask is {raw.shape[1]}x{raw.shape[0]} but its image "
                                    f"{sample.image} is {image.shape[1]}x{image.shape[0]} (width x height)"))
        image = None
    if sample.decoded:
        mask = raw if raw.ndim == 2 else raw[..., 0]
        bad = (mask >= cm.num_classes) & (mask != cm.ignore_index)
        if bad.any():
            vals, cnts = np.unique(mask[bad], return_counts=True)
            res.problems.append(Problem(ERROR, path, "values that are not class indices: "
                                        + ", ".join(f"{v} ({c} px)" for v, c in zip(vals, cnts))))
            mask = np.where(bad, cm.ignore_index, mask).astype(np.uint8)
    else:
        if cm.mask_kind == "rgb" and cm.binarize is not None:
            off = res.off_binary = int(((raw != 0) & (raw != 255)).any(axis=-1).sum())
            if off:
                res.problems.append(Problem(INFO, path, f"{off} px are not pure 0/255 colours; binarizing at "
                                            f"{cm.binarize} decides their class"))
        if cm.mask_kind != "rgb":
            vals, cnts = np.unique(raw, return_counts=True)
            res.raw_values = dict(zip(vals.tolist(), cnts.tolist()))
        mask, unknown = decode_mask_array(raw, cm, path, unknown_to_ignore=True)
        res.unknown = unknown
        if unknown:
            total = sum(unknown.values())
            listed = ", ".join(f"{v} ({c} px)" for v, c in list(unknown.items())[:8])
            more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
            if unknown_to_ignore:
                res.problems.append(Problem(WARNING, path, f"{total} px with values not in class map '{cm.name}' "
                                            f"mapped to ignore: {listed}{more}"))
            else:
                res.problems.append(Problem(ERROR, path, f"{total} px with values not in class map '{cm.name}': "
                                            f"{listed}{more}"))
    if invalid is not None:
        mask = np.where(invalid, cm.ignore_index, mask).astype(np.uint8)
    res.counts = np.bincount(mask.ravel(), minlength=256).astype(np.int64)
    res.mask_classes = int((res.counts[: cm.num_classes] > 0).sum())
    if image is not None:
        flat_mask = mask.ravel()
        sums = np.zeros((256, image.shape[-1]))
        for c in range(image.shape[-1]):
            sums[:, c] = np.bincount(flat_mask, weights=image[..., c].ravel(), minlength=256)
        res.class_image_sum = sums
    return res


def _pil_mode(path: str) -> str:
    if path.lower().endswith((".tif", ".tiff")):
        return "tiff"
    from PIL import Image

    with Image.open(path) as im:
        return im.mode


# ---------------------------------------------------------------------- dataset check
def check_dataset(data_dir, classmap, layout: str, unknown_to_ignore: bool = False, workers: int = 2) -> Report:
    """Read every file of ``data_dir`` (``layout``) and collect counts and problems."""
    cm = get_classmap(classmap)
    report = Report(str(data_dir), cm, layout, unknown_to_ignore=unknown_to_ignore)
    report.class_counts = np.zeros(cm.num_classes, np.int64)
    try:
        files: DatasetFiles = discover(data_dir, layout)
    except DataError as e:
        report.problems.append(Problem(ERROR, e.path, e.problem))
        return report
    report.pairs, report.unlabelled = len(files.labelled), len(files.unlabelled)
    for note in files.notes:
        path, _, msg = note.partition(": ")
        report.problems.append(Problem(WARNING, path, msg))
    for s in files.unlabelled:  # named: training skips them
        report.problems.append(Problem(WARNING, s.image, "image without a mask (not trained on)"))
    if not files.labelled:
        report.problems.append(Problem(ERROR, str(data_dir), f"no (image, mask) pairs found with layout '{layout}'"))
    samples = files.labelled + files.unlabelled
    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL and numpy release the GIL while decoding
        results = list(pool.map(lambda s: _check_sample(s, cm, unknown_to_ignore), samples))

    image_hashes, mask_hashes = defaultdict(list), defaultdict(list)
    bands = Counter()
    report.class_image_sum = np.zeros((cm.num_classes, 3))
    for r in results:
        report.problems += r.problems
        if r.image_mode:
            report.image_modes[r.image_mode] += 1
            image_hashes[r.image_hash].append(r.sample.image)
        if r.mask_mode:
            report.mask_modes[r.mask_mode] += 1
        if r.mask_hash:
            mask_hashes[r.mask_hash].append(r)
        report.off_binary += r.off_binary
        if r.counts is not None:
            report.class_counts += r.counts[: cm.num_classes]
            report.ignored_pixels += int(r.counts[cm.num_classes:].sum())
        for v, c in r.unknown.items():
            report.unknown_colours[v] += c
            report.unknown_files[v] += 1
        for v, c in r.raw_values.items():
            report.raw_values[v] += c
        if r.class_image_sum is not None and r.class_image_sum.shape[1] >= 3:
            report.class_image_sum += r.class_image_sum[: cm.num_classes, :3]
    for mode, n in report.image_modes.items():
        bands[mode] += n
    if len({m.split()[0] for m in report.image_modes}) > 1:
        report.problems.append(Problem(WARNING, str(data_dir), "images come in several modes: "
                                       + ", ".join(f"{m} x{n}" for m, n in report.image_modes.items())))
    for paths in image_hashes.values():
        if len(paths) > 1:
            report.problems.append(Problem(WARNING, paths[0], "identical pixels in " + ", ".join(paths[1:])))
    for group in mask_hashes.values():
        if len(group) > 1:
            names = ", ".join(r.sample.mask for r in group[1:])
            distinct_images = len({r.image_hash for r in group}) > 1
            trivial = group[0].mask_classes <= 1
            if distinct_images and not trivial:
                msg = (f"identical mask in {names}, for different images: one of them is probably a copy "
                       "of the wrong label")
                report.problems.append(Problem(ERROR, group[0].sample.mask, msg))
            else:
                why = "a single class" if trivial else "the images are identical too"
                report.problems.append(Problem(WARNING, group[0].sample.mask, f"identical mask in {names} ({why})"))
    _check_classes_json(Path(data_dir), cm, report)
    return report


def _check_classes_json(root: Path, cm: ClassMap, report: Report) -> None:
    """Compare a release's own classes.json (Humans in the Loop format) with the masks."""
    path = root / "classes.json"
    if cm.mask_kind != "rgb" or not path.is_file():
        return
    try:
        entries = json.loads(path.read_text()).get("classes", [])
        listed = {e["title"]: e["color"].upper() for e in entries}
    except (ValueError, KeyError, AttributeError, TypeError):
        report.problems.append(Problem(WARNING, str(path), "unreadable classes.json"))
        return
    ours = {rgb_to_hex(c) for c in cm.palette + cm.ignore_colors}
    used = {rgb_to_hex(c) for c, n in zip(cm.palette, report.class_counts) if n}
    unused = {t: c for t, c in listed.items() if c not in ours}
    if unused:
        report.problems.append(Problem(WARNING, str(path), "colours listed here are not the colours the masks use "
                                       f"({', '.join(f'{t} {c}' for t, c in unused.items())}); masks use the class "
                                       f"map's colours ({', '.join(sorted(used))}), so the class map follows the masks"))


# ---------------------------------------------------------------------- report text
def format_report(report: Report) -> str:
    cm = report.classmap
    lines = [f"landseg data check: {report.data_dir}",
             f"class map '{cm.name}' ({cm.mask_kind} masks, {cm.num_classes} classes), layout '{report.layout}'",
             f"pairs: {report.pairs}   unlabelled images: {report.unlabelled}"]
    if report.image_modes:
        lines.append("image modes: " + ", ".join(f"{m} x{n}" for m, n in sorted(report.image_modes.items())))
    if report.mask_modes:
        lines.append("mask modes:  " + ", ".join(f"{m} x{n}" for m, n in sorted(report.mask_modes.items())))
    total = int(report.class_counts.sum()) + report.ignored_pixels
    if total:
        lines.append("")
        lines.append(f"{'class':<22}{'pixels':>14}{'fraction':>10}   mean image colour")
        for i, name in enumerate(cm.class_names):
            n = int(report.class_counts[i])
            colour = ""
            if n and report.class_image_sum is not None:
                colour = "(" + ", ".join(f"{v:.0f}" for v in report.class_image_sum[i] / n) + ")"
            lines.append(f"{i:>2} {name:<19}{n:>14,}{n / total:>10.2%}   {colour}")
        lines.append(f"{'-- ignored (no label)':<22}{report.ignored_pixels:>14,}{report.ignored_pixels / total:>10.2%}")
        absent = [n for n, c in zip(cm.class_names, report.class_counts) if c == 0]
        if absent:
            lines.append(f"classes with no pixels: {', '.join(absent)}")
    if total and cm.mask_kind == "rgb" and cm.binarize is not None:
        if report.off_binary:
            lines.append(f"binarization needed: {report.off_binary:,} px ({report.off_binary / total:.3%}) have colours "
                         f"that are not pure 0/255; each channel is thresholded at {cm.binarize}")
        else:
            lines.append(f"binarization: every mask pixel is a pure 0/255 colour, thresholding at {cm.binarize} "
                         "changes nothing in these files (kept for masks that went through JPEG)")
    if report.raw_values and cm.mask_kind == "grey":
        grey = sum(c for v, c in report.raw_values.items() if 0 < v < 255)
        lines.append(f"grey levels: {len(report.raw_values)} distinct values; {grey:,} px ({grey / total:.2%}) are "
                     f"anti-aliased levels strictly between 0 and 255; >= {cm.grey_threshold} counts as "
                     f"'{cm.class_names[1]}'")
    elif report.raw_values:
        lines.append("raw mask values present: " + ", ".join(f"{v}: {c:,}" for v, c in sorted(report.raw_values.items())[:40])
                     + (f" ... ({len(report.raw_values)} values)" if len(report.raw_values) > 40 else ""))
    if report.unknown_colours:
        lines.append("")
        verb = "mapped to ignore" if report.unknown_to_ignore else "NOT IN THE CLASS MAP"
        lines.append(f"mask values {verb} (all files): "
                     + ", ".join(f"{v}: {c:,} px in {report.unknown_files[v]} file(s)"
                                 for v, c in report.unknown_colours.most_common(12))
                     + (f" ... ({len(report.unknown_colours)} values)" if len(report.unknown_colours) > 12 else ""))
    by_sev = {s: [p for p in report.problems if p.severity == s] for s in (ERROR, WARNING, INFO)}
    for sev in (ERROR, WARNING, INFO):
        if by_sev[sev]:
            lines.append("")
            lines.append(f"{sev}s ({len(by_sev[sev])}):")
            lines += [f"  {p.path}: {p.message}" for p in by_sev[sev]]
    lines.append("")
    if report.ok:
        lines.append("OK: no problems that would make training wrong")
    else:
        lines.append(f"FAILED: {len(report.errors)} error(s)" if report.errors else "FAILED: nothing to train on")
        if report.unknown_colours and not report.unknown_to_ignore:
            lines.append("  (--unknown-to-ignore trains with those pixels ignored, if that is what they mean)")
    return "\n".join(lines)
