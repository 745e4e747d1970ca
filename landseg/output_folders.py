"""Output folders a stage owns: a stage writes only files it wrote before, never an input.

Users keep images and labels in folders such as ``ds/images`` and ``ds/masks``; pointing a
stage's output at the wrong place must not overwrite them. Before any work, a stage lists the
files it will write and :func:`claim_outputs` refuses, naming the path and what to do:

* an output folder (the root or a sub-folder it writes into) that is one of the stage's input
  folders, real paths compared, so a symlink does not hide it;
* a planned file that is one of the stage's input files;
* a planned file that exists but that no earlier run of the same stage recorded as its own
  (the user's file, or another stage's output).

What a stage claims is recorded in ``<output>/.landseg/<stage>[.<tag>].json`` before it writes,
so a rerun (or a run killed mid-way and started again) overwrites exactly its own files. Each
process of a sharded stage keeps its own record (``tag``), so none rewrites another's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

RECORD_DIR = ".landseg"


class OutputConflict(ValueError):
    """A planned output would write over an input or over a file this stage did not write.
    Message: ``"<path>: <problem>; <what to do>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


def real(path: str | os.PathLike) -> str:
    """The absolute path with every symlink resolved (also for paths that do not exist yet)."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _record_path(root: Path, stage: str, tag: str) -> Path:
    return root / RECORD_DIR / (f"{stage}.{tag}.json" if tag else f"{stage}.json")


def owned_files(root: str | os.PathLike, stage: str) -> set[str]:
    """Files (relative to ``root``, '/'-separated) that earlier runs of ``stage`` recorded there."""
    folder = Path(root) / RECORD_DIR
    files: set[str] = set()
    if not folder.is_dir():
        return files
    for record in folder.glob(f"{stage}*.json"):
        name = record.name[: -len(".json")]
        if name != stage and not name.startswith(stage + "."):
            continue
        try:
            with open(record) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue  # an unreadable record claims nothing: its files are then refused, never lost
        if isinstance(data, dict) and data.get("stage") == stage and isinstance(data.get("files"), list):
            files.update(str(p) for p in data["files"] if isinstance(p, str))
    return files


def _rel(path: str | os.PathLike) -> str:
    rel = Path(os.fspath(path)).as_posix()
    if rel.startswith("/") or ".." in Path(rel).parts:
        raise ValueError(f"{rel}: an output file must be given relative to its output folder")
    return rel


def check_not_input_folder(folder: str | os.PathLike, input_dirs: Iterable[str | os.PathLike],
                           stage: str, what: str = "output folder") -> None:
    """Refuse an output ``folder`` that is (after resolving symlinks) one of ``input_dirs``."""
    target = real(folder)
    for d in input_dirs:
        if d is not None and real(d) == target:
            shown = os.fspath(folder) if os.fspath(folder) == os.fspath(d) else f"{os.fspath(folder)} (= {os.fspath(d)})"
            raise OutputConflict(shown, f"the {what} of landseg {stage} is its input folder; writing there would mix "
                                 "its outputs with (or write over) the inputs: choose another output folder")


def claim_outputs(root: str | os.PathLike, stage: str, files: Iterable[str | os.PathLike], *,
                  input_files: Iterable[str | os.PathLike] = (), input_dirs: Iterable[str | os.PathLike] = (),
                  tag: str = "") -> list[Path]:
    """Check that ``stage`` may write ``files`` (relative to ``root``) and record them as its own;
    returns their paths. Raises :class:`OutputConflict` naming the first path it may not write,
    before anything is written (see the module docstring)."""
    root = Path(root)
    rels = sorted({_rel(f) for f in files})
    dirs = [d for d in input_dirs if d is not None]
    check_not_input_folder(root, dirs, stage)
    inputs = {real(p) for p in input_files}
    for sub in sorted({str(Path(r).parent) for r in rels} - {"."}):
        check_not_input_folder(root / sub, dirs, stage, what=f"output sub-folder {sub}/")
    owned = owned_files(root, stage)
    for rel in rels:
        path = root / rel
        if real(path) in inputs:
            raise OutputConflict(path, f"landseg {stage} would write over one of its own inputs; choose another "
                                 "output folder")
        if os.path.lexists(path) and rel not in owned:
            raise OutputConflict(path, f"exists and was not written by landseg {stage} in this folder (no record in "
                                 f"{root / RECORD_DIR}); landseg never overwrites a file it did not write: choose "
                                 "another output folder, or move that file away")
    record(root, stage, rels, tag=tag)
    return [root / r for r in rels]


def claim_file(path: str | os.PathLike, stage: str, *, input_files: Iterable[str | os.PathLike] = ()) -> Path:
    """:func:`claim_outputs` for one named output file (``--output report.html``, ``--band-stats FILE``)."""
    path = Path(path)
    return claim_outputs(path.parent, stage, [path.name], input_files=input_files)[0]


def record(root: str | os.PathLike, stage: str, files: Iterable[str | os.PathLike], *, tag: str = "") -> None:
    """Add ``files`` (relative to ``root``) to ``stage``'s record in ``root`` (atomically)."""
    from landseg.io_utils import write_json

    root = Path(root)
    path = _record_path(root, stage, tag)
    mine: set[str] = set()
    if path.is_file():
        try:
            with open(path) as f:
                mine = set(json.load(f).get("files", []))
        except (OSError, ValueError, AttributeError):
            mine = set()
    new = {_rel(f) for f in files}
    if new <= mine:
        return
    write_json(path, {"stage": stage, "files": sorted(mine | new)})
