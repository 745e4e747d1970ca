"""Pretrained encoder weights without the network.

Keras and segmentation-models fetch ImageNet weights with ``get_file``, which downloads on a
cache miss. landseg never downloads at run time: ``cached_weights`` finds a Keras application's
file in the cache itself, and ``no_download()`` keeps segmentation-models' ``get_file`` to the
cache; both raise ``WeightsNotFoundError`` saying where to put a missing file.
``transfer_weights`` copies a 3-band model's weights into one with another band count.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np


class WeightsNotFoundError(ValueError):
    """A pretrained weights file is missing; the message starts with the path it looked at."""


def keras_cache_dir() -> str:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models or ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def check_weights_file(path: str) -> str:
    """Return ``path`` if it is a file, else raise WeightsNotFoundError naming it."""
    if not os.path.isfile(path):
        raise WeightsNotFoundError(f"{path}: encoder weights file not found (encoder_weights takes None, "
                                   f"'imagenet' or the path of an existing .h5 / .weights.h5 file)")
    return path


def missing_weights_error(what: str, fname: str, origin: str, base: str) -> WeightsNotFoundError:
    path = os.path.join(base, fname)
    return WeightsNotFoundError(
        f"{path}: ImageNet weights for {what} are not in the local Keras cache, and landseg does not "
        f"download at run time. Fetch {fname} from {origin} on a machine with network access and copy it "
        f"to {base}/ (or set KERAS_HOME), or pass encoder_weights='/path/to/{fname}'.")


def cached_weights(what: str, fname: str, origin: str) -> str:
    """The path of ``fname`` in the Keras cache, or WeightsNotFoundError saying how to supply it."""
    path = os.path.join(keras_cache_dir(), fname)
    if not os.path.isfile(path):
        raise missing_weights_error(what, fname, origin, keras_cache_dir())
    return path


@contextlib.contextmanager
def no_download(what: str) -> Iterator[None]:
    """Within the block, segmentation-models' ``get_file`` serves only cached files.

    segmentation-models looks its ImageNet files up in its own table and fetches them with the
    ``tf.keras.utils.get_file`` it was handed at import, with no hook to pass another; swapping that
    public function for the block is the one way to keep it off the network.
    """
    from tensorflow import keras as tfk

    def offline_get_file(fname=None, origin=None, *args, cache_subdir="datasets", cache_dir=None, **kwargs):
        fname = fname or os.path.basename(str(origin))
        base = os.path.join(cache_dir, cache_subdir) if cache_dir else os.path.join(os.path.dirname(keras_cache_dir()), cache_subdir)
        path = os.path.join(base, fname)
        if os.path.isfile(path):
            return path
        raise missing_weights_error(what, fname, origin, base)

    original = tfk.utils.get_file
    tfk.utils.get_file = offline_get_file
    try:
        yield
    finally:
        tfk.utils.get_file = original


def adapt_band_axis(src: np.ndarray, bands: int, axis: int, scale: bool) -> np.ndarray:
    """Map a 3-band weight to ``bands`` along ``axis``.

    Kernels (``scale=True``) follow timm's rule: repeat the RGB filters cyclically (band 4
    starts as band 1's filter) and multiply by 3/bands, so a constant image gives the same
    first-layer response; one band sums them. Per-band vectors (input BN statistics,
    normalisation means) are repeated cyclically (one band: their mean).
    """
    src = np.asarray(src)
    n = src.shape[axis]
    if bands == 1:
        return np.sum(src, axis=axis, keepdims=True) if scale else np.mean(src, axis=axis, keepdims=True)
    idx = np.arange(bands) % n
    out = np.take(src, idx, axis=axis)
    return out * (n / bands) if scale else out


def caffe_first_kernel(kernel: np.ndarray, bands: int) -> np.ndarray:
    """A Caffe-trained first conv's kernel (input axis 2 in BGR order) for landseg's RGB input with
    ``bands`` bands: the input axis reversed, then adapted (``adapt_band_axis``) where bands != 3."""
    kernel = np.asarray(kernel)[:, :, ::-1, :]
    return kernel if bands == 3 else adapt_band_axis(kernel, bands, axis=2, scale=True)


def transfer_weights(src, dst) -> list[str]:
    """Copy every weight of ``src`` into ``dst`` (same architecture, other band count).

    Weights are matched by position; where shapes differ only in one axis (the input-band
    axis), the weight is adapted with ``adapt_band_axis``. Returns the names of adapted weights.
    """
    sw, dw = src.weights, dst.weights
    if len(sw) != len(dw):
        raise ValueError(f"cannot transfer weights: {len(sw)} vs {len(dw)} variables")
    adapted = []
    for s, d in zip(sw, dw):
        value = np.asarray(s.numpy() if hasattr(s, "numpy") else s)
        if tuple(value.shape) != tuple(d.shape):
            diff = [i for i, (a, b) in enumerate(zip(value.shape, d.shape)) if a != b]
            if len(value.shape) != len(d.shape) or len(diff) != 1:
                raise ValueError(f"cannot transfer {s.path}: shape {value.shape} vs {tuple(d.shape)}")
            axis = diff[0]
            value = adapt_band_axis(value, int(d.shape[axis]), axis, scale=len(value.shape) > 1)
            adapted.append(d.path)
        d.assign(value.astype(np.asarray(d.numpy()).dtype))
    return adapted
