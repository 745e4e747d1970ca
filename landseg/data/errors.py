"""One exception type for bad input files, so callers can catch data problems apart from bugs.

Every message starts with the file path and then says what is wrong with it, because a
user with ten thousand tiles needs to know *which* file to fix, not only that one is bad.
"""

from __future__ import annotations

import os
import re

from landseg.classmaps import UnknownMaskValuesError


class DataError(ValueError):
    """A data file is missing, unreadable or inconsistent. Message: ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        ValueError.__init__(self, f"{self.path}: {problem}")

    def __reduce__(self):  # picklable (multiprocessing, tf.numpy_function re-raises)
        return (type(self), (self.path, self.problem))


class MaskValuesError(DataError, UnknownMaskValuesError):
    """A mask holds colours/values its class map does not define (which ones, how many pixels)."""

    def __init__(self, path: str | os.PathLike, problem: str, values, counts):
        DataError.__init__(self, path, problem)
        self.values = list(values)
        self.counts = [int(c) for c in counts]

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.values, self.counts))


_RAISED = re.compile(r"\b(?:DataError|MaskValuesError): (.+?): (.+?)(?:\n|$)")


def raised_inside(message: str) -> DataError | None:
    """The :class:`DataError` a reader raised inside a ``tf.data`` function, from the text of TensorFlow's
    error (which keeps the Python exception's message), or None."""
    found = list(_RAISED.finditer(message))
    if not found:
        return None
    path, problem = found[-1].group(1).strip(), found[-1].group(2).strip()
    return DataError(path, problem)
