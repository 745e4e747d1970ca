"""Cheap whole-file checks before training, remembered per file.

* :func:`check_complete`: a JPEG must end with its end-of-image marker and a PNG with its ``IEND``
  chunk - a file cut short (an interrupted copy or download) fails here, by name, instead of
  inside TensorFlow's decoder at the first step with an error that names no file.
* :func:`cached`: the result of a header read, kept in ``<cache dir>/file_checks.json`` keyed by
  path, size and modification time, so checking a large dataset again costs one ``stat`` per file.
  The cache dir is ``$LANDSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/landseg``, else ``~/.cache/landseg``;
  ``LANDSEG_CACHE_DIR=none`` switches the cache off. A cache that cannot be read or written is ignored.
* :func:`find_unreadable`: decode every file of a sample list to name the one TensorFlow failed on.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable

from landseg.data.errors import DataError

CACHE_VERSION = 1
_TAIL = 4096
_lock = threading.Lock()
_cache: dict | None = None
_dirty = False


def cache_file() -> Path | None:
    env = os.environ.get("LANDSEG_CACHE_DIR")
    if env and env.lower() == "none":
        return None
    if env:
        return Path(env) / "file_checks.json"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "landseg" / "file_checks.json"


def _load() -> dict:
    global _cache
    if _cache is None:
        _cache = {}
        path = cache_file()
        if path is not None and path.is_file():
            try:
                with open(path) as f:
                    data = json.load(f)
                if isinstance(data, dict) and data.get("version") == CACHE_VERSION and isinstance(data.get("files"), dict):
                    _cache = data["files"]
            except (OSError, ValueError):
                _cache = {}
    return _cache


def save() -> None:
    """Write the cache if it changed (best effort)."""
    global _dirty
    path = cache_file()
    with _lock:
        if not _dirty or path is None or _cache is None:
            return
        try:
            from landseg.io_utils import write_json

            write_json(path, {"version": CACHE_VERSION, "files": _cache})
            _dirty = False
        except OSError:
            pass


def _key(path: str) -> tuple[str, list] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.abspath(path), [st.st_size, st.st_mtime_ns]


def cached(path: str, kind: str, compute: Callable[[], object]):
    """``compute()`` (JSON-able), or its remembered result for this file's size and mtime.
    Exceptions are not remembered: a bad file is checked again next time."""
    global _dirty
    key = _key(path)
    if key is None or cache_file() is None:
        return compute()
    name, stamp = key
    with _lock:
        entry = _load().get(name)
        if isinstance(entry, dict) and entry.get("stamp") == stamp and kind in entry:
            return entry[kind]
    value = compute()
    with _lock:
        entry = _load().get(name)
        if not isinstance(entry, dict) or entry.get("stamp") != stamp:
            entry = {"stamp": stamp}
        entry[kind] = value
        _load()[name] = entry
        _dirty = True
    return value


def check_complete(path: str | os.PathLike, fmt: str | None = None, what: str = "image") -> None:
    """Raise :class:`DataError` when a JPEG or PNG file is cut short (its end marker is missing)."""
    path = os.fspath(path)
    fmt = (fmt or "").upper()
    if not fmt:
        ext = os.path.splitext(path)[1].lower()
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(ext, "")
    if fmt not in ("JPEG", "PNG"):
        return
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError as e:
        raise DataError(path, f"unreadable {what} ({e.strerror or e})") from None
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        raise DataError(path, f"truncated {what}: the JPEG has no end-of-image marker (cut short by an interrupted "
                        "copy or download?); replace or remove the file")
    if fmt == "PNG" and b"IEND" not in tail:
        raise DataError(path, f"truncated {what}: the PNG has no IEND chunk (cut short by an interrupted copy or "
                        "download?); replace or remove the file")


def find_unreadable(samples, classmap, unknown_to_ignore: bool = False) -> DataError | None:
    """Decode every image and mask of ``samples`` with landseg's readers; the first file that
    fails, as a :class:`DataError`, or None when all decode."""
    from landseg.classmaps import get_classmap
    from landseg.data.io import read_image, read_mask
    from landseg.data.raster import use_rasterio

    cm = get_classmap(classmap)
    for s in samples:
        try:
            if not use_rasterio(s.image):
                check_complete(s.image)
                read_image(s.image)
            if s.mask is not None and not use_rasterio(s.mask):
                check_complete(s.mask, what="mask")
                read_mask(s.mask, cm, unknown_to_ignore=unknown_to_ignore, decoded=bool(s.decoded))
        except DataError as e:
            return e
    return None
