"""Reading and writing image/mask files with errors that name the file and the problem.

Satellite data arrives as JPEG, PNG (RGB, RGBA, grey, palette, 16-bit) and TIFF. Every
reader here returns plain ``uint8`` numpy arrays so the rest of landseg deals with one
representation, and every failure is a :class:`DataError` saying which file and why,
instead of a bare PIL/TF traceback deep inside a training loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from landseg.classmaps import ClassMap, get_classmap
from landseg.data.errors import DataError, MaskValuesError
from landseg.data.formats import IMAGE_EXTENSIONS, TIFF_EXTENSIONS, uint8_problem
from landseg.io_utils import atomic_path


# A truncated JPEG must be an error, not a silently grey-filled image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def _check_file(path: str) -> None:
    from landseg.io_utils import file_problem

    problem = file_problem(path)
    if problem is not None:
        raise DataError(path, problem)


def _to_uint8(array: np.ndarray, path: str, what: str) -> np.ndarray:
    """Accept 8-bit data, and wider integers or whole floats only when their values fit in 8 bits.

    Rescaling 12/16-bit imagery needs a choice (percentile stretch, fixed gain) that a
    reader must not make silently, so anything else is an error saying why.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255 if what == "image" else array.astype(np.uint8)
    problem = uint8_problem(array, what)
    if problem is not None:
        raise DataError(path, problem)
    return array.astype(np.uint8)


def _read_tiff(path: str) -> np.ndarray:
    """TIFF via tifffile (multi-band, planar, 16-bit), bands moved last using the file's axes."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
    except Exception as e:  # tifffile raises many types for corrupt files
        raise DataError(path, f"unreadable TIFF ({type(e).__name__}: {e})") from e
    if array.ndim == 3 and axes[0] in "CS" and axes[1:] == "YX":
        array = np.moveaxis(array, 0, -1)  # planar (bands, H, W) -> (H, W, bands)
    return array


def _open_pil(path: str) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
    except UnidentifiedImageError as e:
        raise DataError(path, "unreadable: not an image file PIL recognises") from e
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower() or "premature end" in msg.lower():
            raise DataError(path, f"truncated image file ({msg})") from e
        raise DataError(path, f"unreadable image ({msg})") from e
    except Exception as e:  # decoder errors (SyntaxError, ValueError ...) from broken files
        raise DataError(path, f"unreadable image ({type(e).__name__}: {e})") from e
    return im


def _pil_array(im: Image.Image, band_rows: int = 512) -> np.ndarray:
    """``np.asarray(im)`` without its transient copies on big 8-bit images: rows are copied a band at
    a time into the result (PIL's own ``__array_interface__`` goes through a full-size ``tobytes``)."""
    if im.mode not in ("L", "RGB", "RGBA") or im.width * im.height < (1 << 22):
        return np.asarray(im)
    w, h = im.size
    out = np.empty((h, w) if im.mode == "L" else (h, w, len(im.mode)), np.uint8)
    for y in range(0, h, band_rows):
        out[y : y + band_rows] = np.asarray(im.crop((0, y, w, min(y + band_rows, h))))
    return out


def read_raw(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Pixels exactly as stored (palette images keep their indices) and the PIL mode (or "tiff")."""
    path = os.fspath(path)
    _check_file(path)
    if path.lower().endswith(TIFF_EXTENSIONS):
        return _read_tiff(path), "tiff"
    im = _open_pil(path)
    return np.asarray(im), im.mode


def read_image(path: str | os.PathLike, bands: int | None = None) -> np.ndarray:
    """Read an image as ``uint8 (H, W, C)``.

    Palette images become RGB (or RGBA when the palette has transparency). ``bands`` asks
    for a band count: an alpha band is dropped to reach it (the data check reports alpha),
    any other mismatch is a :class:`DataError`.
    """
    path = os.fspath(path)
    _check_file(path)
    if path.lower().endswith(TIFF_EXTENSIONS):
        array = _read_tiff(path)
        has_alpha = False
    else:
        im = _open_pil(path)
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif im.mode == "1":
            im = im.convert("L")
        has_alpha = im.mode in ("RGBA", "LA", "La", "RGBa", "PA")
        array = _pil_array(im)
        im.close()
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(path, f"image has shape {array.shape}, expected (height, width[, bands])")
    array = _to_uint8(array, path, "image")
    if bands is not None and array.shape[-1] != bands:
        if has_alpha and array.shape[-1] - 1 == bands:
            array = array[..., :-1]
        else:
            raise DataError(path, f"image has {array.shape[-1]} band(s), expected {bands}")
    return np.ascontiguousarray(array)


def read_scene(path: str | os.PathLike, norm=None) -> tuple[np.ndarray, np.ndarray | None]:
    """A whole scene for the in-memory stages (evaluation, prediction, pseudo-labels): GDAL rasters
    through :func:`landseg.data.raster.read_raster` with ``norm`` (uint8 image, valid-pixel mask),
    other pictures through :func:`read_image` (valid None)."""
    from landseg.data.raster import read_raster, use_rasterio

    if use_rasterio(path):
        return read_raster(path, norm)
    return read_image(path), None


def read_mask_raw(path: str | os.PathLike, classmap: ClassMap | str) -> np.ndarray:
    """The mask's raw values in the form its class map decodes (RGB, or one band of values).

    RGB class maps see palette PNGs converted to their colours (Dubai's Tile 2 and 4 masks
    are palette PNGs); index/grey class maps see the stored values themselves.
    """
    path = os.fspath(path)
    cm = get_classmap(classmap)
    _check_file(path)
    if path.lower().endswith(TIFF_EXTENSIONS):
        raw = _read_tiff(path)
    else:
        im = _open_pil(path)
        if cm.mask_kind == "rgb":
            if im.mode != "RGB":
                im = im.convert("RGB")
        elif im.mode in ("LA", "La", "PA"):
            im = im.getchannel(0)
        elif im.mode == "RGBA":
            im = im.convert("RGB")
        elif im.mode == "1":
            im = im.convert("L")
        raw = np.asarray(im)
    if raw.ndim == 0 or raw.size == 0:
        raise DataError(path, f"mask has shape {raw.shape}")
    raw = _to_uint8(raw, path, "mask")
    if cm.mask_kind == "rgb" and (raw.ndim != 3 or raw.shape[-1] != 3):
        raise DataError(path, f"class map {cm.name!r} needs RGB colour masks, this mask has shape {raw.shape}")
    if cm.mask_kind != "rgb" and raw.ndim == 3:
        if raw.shape[-1] == 1 or all(np.array_equal(raw[..., 0], raw[..., i]) for i in range(1, raw.shape[-1])):
            raw = raw[..., 0]
        else:
            raise DataError(path, f"class map {cm.name!r} needs single-band masks, this one has "
                            f"{raw.shape[-1]} differing bands")
    return raw


def decode_mask_array(raw: np.ndarray, classmap: ClassMap | str, path: str | os.PathLike,
                      unknown_to_ignore: bool = False) -> tuple[np.ndarray, dict[str, int]]:
    """:meth:`ClassMap.decode` for a file: unknown values raise :class:`MaskValuesError` naming
    ``path`` unless ``unknown_to_ignore``; returns ``(mask, {unknown value: pixel count})``."""
    cm = get_classmap(classmap)
    mask, unknown = cm.decode(raw)
    if unknown and not unknown_to_ignore:
        e = cm.unknown_values_error(unknown)  # MaskValuesError puts the path in front
        raise MaskValuesError(path, str(e), e.values, e.counts)
    return mask, unknown


def read_mask(path: str | os.PathLike, classmap: ClassMap | str, unknown_to_ignore: bool = False,
              decoded: bool = False) -> np.ndarray:
    """Read a mask as ``uint8 (H, W)`` class indices (``classmap.ignore_index`` = no label).

    ``decoded=True`` reads a mask that already holds class indices (pseudo-labels, synthetic
    data) and checks they are valid. ``unknown_to_ignore=True`` maps colours the class map
    does not define to ignore instead of raising (an explicit, opt-in choice).
    """
    path = os.fspath(path)
    cm = get_classmap(classmap)
    if path.lower().endswith(TIFF_EXTENSIONS):
        # a single-band class raster that declares nodata: those pixels are "no label"
        from landseg.data.raster import read_mask_with_nodata

        mask = read_mask_with_nodata(path, cm, lambda raw: _decode_mask_values(raw, cm, path, unknown_to_ignore, decoded),
                                     cm.ignore_index)
        if mask is not None:
            return mask
    raw = read_raw(path)[0] if decoded else read_mask_raw(path, cm)
    return _decode_mask_values(raw, cm, path, unknown_to_ignore, decoded)


def _decode_mask_values(raw: np.ndarray, cm: ClassMap, path: str, unknown_to_ignore: bool, decoded: bool) -> np.ndarray:
    if decoded:
        if raw.ndim == 3:
            raise DataError(path, f"decoded masks hold one band of class indices, this one has shape {raw.shape}")
        raw = _to_uint8(raw, path, "mask")
        bad = (raw >= cm.num_classes) & (raw != cm.ignore_index)
        if bad.any():
            values, counts = np.unique(raw[bad], return_counts=True)
            raise MaskValuesError(path, f"{int(counts.sum())} pixels hold values that are not class indices of "
                                  f"{cm.name!r} (0..{cm.num_classes - 1} or {cm.ignore_index}): "
                                  + ", ".join(f"{v} ({c} px)" for v, c in zip(values, counts)),
                                  [str(v) for v in values], counts)
        return raw
    raw = _to_uint8(raw, path, "mask")
    try:
        mask, _ = decode_mask_array(raw, cm, path, unknown_to_ignore)
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(path, str(e)) from e
    return mask


def write_png(path: str | os.PathLike, array: np.ndarray, palette=None) -> None:
    """Write a uint8 array as PNG atomically; with ``palette`` (N x 3 colours) a palette PNG.

    Palette PNGs keep the class indices as pixel values (readable as index masks) while
    image viewers show the class colours.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{os.fspath(path)}: values must lie in 0..255 to write an 8-bit PNG")
        array = array.astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if palette is not None:
        if array.ndim != 2:
            raise ValueError(f"{os.fspath(path)}: a palette PNG needs a 2-D index array, got shape {array.shape}")
        pal = np.zeros((256, 3), np.uint8)
        given = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
        pal[: len(given)] = given
        im = Image.fromarray(array, mode="L")
        im = im.convert("P")  # keeps pixel values; only attaches a palette
        im.putpalette(pal.reshape(-1).tolist())
    else:
        im = Image.fromarray(array)
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")


def named_like_images(folder: str | os.PathLike, extensions=IMAGE_EXTENSIONS) -> list[str]:
    """Every entry of ``folder`` (not recursive, hidden names left out) whose name has an image extension,
    sorted: regular files, and also folders, FIFOs, broken links and link loops so named, which the
    readers then report by name (:func:`landseg.io_utils.file_problem`) instead of skipping in silence."""
    return sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in extensions and not p.name.startswith("."))


def list_images(folder: str | os.PathLike, extensions=IMAGE_EXTENSIONS) -> list[str]:
    """Entries of ``folder`` named like images (:func:`named_like_images`); DataError if none or no folder."""
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise DataError(folder, "folder does not exist")
    if not os.path.isdir(folder):
        raise DataError(folder, "is not a folder")
    files = named_like_images(folder, extensions)
    if not files:
        raise DataError(folder, f"folder holds no images ({', '.join(extensions)})")
    return files
