"""Saved model files (``.keras``): checked before Keras reads them, so a bad file is reported as
what it is - missing, corrupt or truncated, or refused because it holds code - with its path."""

from __future__ import annotations

import os
import zipfile


class ModelFileError(ValueError):
    """A model file that cannot be used. Message: ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


def keras_file_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the ``.keras`` file at ``path`` (None when it is a complete archive).

    A ``.keras`` file is a zip archive with ``config.json``; a file cut short by a crash or a full
    disk, or any other bytes, fails the zip directory or the member checksums."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return "model file not found"
    if not os.path.isfile(path):
        return "is not a file"
    size = os.path.getsize(path)
    if size == 0:
        return "model file is empty (0 bytes): corrupt, probably cut short by a crash or a full disk"
    if not path.lower().endswith(".keras"):
        return None  # other formats (.h5, .weights.h5) are Keras' to judge
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names:
                return "corrupt model file: the .keras archive has no config.json"
            bad = z.testzip()
            if bad is not None:
                return f"corrupt model file: member {bad} fails its checksum"
    except zipfile.BadZipFile:
        return (f"corrupt or truncated model file ({size} bytes, not a complete .keras zip archive); "
                "it was probably cut short by a crash or a full disk, or is not a Keras model")
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        return f"corrupt or unreadable model file ({type(e).__name__}: {e})"
    return None


def check_keras_file(path: str | os.PathLike) -> None:
    """Raise :class:`ModelFileError` when ``path`` is missing or not a complete model file."""
    problem = keras_file_problem(path)
    if problem is not None:
        raise ModelFileError(path, problem)


def _holds_code(e: Exception) -> bool:
    text = str(e)
    return "Lambda" in text or "safe_mode" in text or "arbitrary code" in text


def load_keras_model(path: str | os.PathLike, **kwargs):
    """:func:`landseg.models.load_model` after :func:`check_keras_file`; Keras' refusal of a file
    holding code (a ``Lambda`` layer) becomes a :class:`ModelFileError` saying so."""
    from landseg.models import load_model

    check_keras_file(path)
    try:
        return load_model(path, **kwargs)
    except (ValueError, TypeError) as e:
        if _holds_code(e):
            raise ModelFileError(path, "refused: the model holds Python code (a Lambda layer), which landseg never "
                                 "runs from a file; rebuild the model without Lambda layers (or register the "
                                 "layer as a serialisable custom layer) and save it again") from None
        raise ModelFileError(path, f"cannot be loaded as a Keras model ({type(e).__name__}: {e})") from None
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise ModelFileError(path, f"corrupt or unreadable model file ({type(e).__name__}: {e})") from None
