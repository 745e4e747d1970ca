"""Progress reporting for the inference stages, kept apart so that every stage (and the GeoTIFF
path) can report progress without importing the others. The library never draws a bar itself:
the command line passes a factory such as ``tqdm``; None means silent."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

# A progress factory: ``progress(total=..., desc=..., leave=...)`` -> a context manager with ``update(n)``.
Progress = Callable[..., object]


class _Silent:
    def update(self, n=1):
        pass


def progress_bar(progress: Progress | None, total: int, desc: str, leave: bool = True):
    """A bar from ``progress`` (e.g. tqdm), or a silent stand-in with the same ``update``."""
    return progress(total=total, desc=desc, leave=leave) if progress is not None else nullcontext(_Silent())
