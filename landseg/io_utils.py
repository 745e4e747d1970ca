"""Atomic file output: a reader never sees a half-written file, and a crash leaves the old one."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary name keeps the target's extension (``suffix``) so writers that pick a
    format from the name (PIL, Keras, matplotlib) still work.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    try:
        try:
            yield tmp
            if os.path.exists(tmp):
                os.chmod(tmp, file_mode())  # mkstemp makes 0600; give the file what open() would
            os.replace(tmp, path)
        except OSError as e:
            if type(e).__module__ == "builtins" and e.errno is not None and e.filename in (None, tmp):
                # name the file being written, not its temporary
                raise OSError(e.errno, e.strerror or str(e), path) from e
            raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits ``open(path, "w")`` would give a new file (0666 less the umask)."""
    return 0o666 & ~current_umask()


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_path` (left behind by a killed write)."""
    return re.match(r"^\..+\.[A-Za-z0-9_]{8}\.tmp", name) is not None


def remove_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Remove :func:`atomic_path` leftovers (``.<name>.<random>.tmp<ext>``) from ``folder``; returns
    their names. Only call it while no other process writes into ``folder`` (e.g. under a run lock)."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if is_temp_name(name) and os.path.isfile(os.path.join(folder, name)):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def file_problem(path: str | os.PathLike, allow_empty: bool = False) -> str | None:
    """What keeps ``path`` from being read as a data file, in the user's terms, or None.

    Checked before anything opens it: a FIFO would block the reader forever, and a folder, a
    symlink loop or a device named like an image must be reported, not skipped in silence."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is a broken symbolic link (its target does not exist)" if os.path.islink(path) else "file does not exist"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) \
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file"
        return f"is {kind}, not a regular file; landseg reads regular files only"
    if st.st_size == 0 and not allow_empty:
        return "file is empty (0 bytes)"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


class NotWritableError(OSError):
    """An output folder cannot be created or written. Message: ``"<folder>: <problem>"``."""


def check_writable_dir(folder: str | os.PathLike, what: str = "output folder") -> None:
    """Create ``folder`` and write, rename and remove a probe file in it, or raise
    :class:`NotWritableError` naming the folder, before any work is done."""
    folder = os.fspath(folder)
    probe = renamed = None
    try:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotWritableError(f"{folder}: {what} is an existing file, not a folder")
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe.", suffix=".tmp", dir=folder)
        os.write(fd, b"x" * 1024)
        os.close(fd)
        renamed = probe + ".renamed.tmp"
        os.replace(probe, renamed)
        probe = None
        os.remove(renamed)
        renamed = None
    except NotWritableError:
        raise
    except OSError as e:
        raise NotWritableError(f"{folder}: {what} is not writable ({e.strerror or e})") from None
    finally:
        for leftover in (probe, renamed):
            if leftover and os.path.exists(leftover):
                try:
                    os.remove(leftover)
                except OSError:
                    pass


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
