"""Histogram matching as a TensorFlow function (for tf.data) and a numpy twin (for prediction).

Scenes shot under different light or sensors differ mostly in their per-band value
distributions; matching each image's histogram to one reference removes much of that
shift. The reference is either an image or a *saved reference*: the mean per-band
histogram of the training images (``compute_reference``), stored in the run folder so
prediction applies the very same transform.

Both implementations reproduce ``skimage.exposure.match_histograms(image, reference,
channel_axis=-1)`` for uint8 images, including its truncation of the interpolated values
to uint8: per band, a 256-entry lookup table maps source quantiles onto the reference's
quantile curve (``np.interp`` over the reference's occupied grey levels), then each
pixel is looked up. Only 256 values per band are interpolated, so matching costs two
passes over the pixels (a histogram and a gather).
"""

from __future__ import annotations

import os

import numpy as np

from landseg.io_utils import atomic_path

NUM_LEVELS = 256


# ---------------------------------------------------------------------- reference form
def image_histogram(image: np.ndarray) -> np.ndarray:
    """Per-band counts of a uint8 (H, W, C) image: float64 (C, 256)."""
    image = as_hwc_uint8(image)
    return np.stack([np.bincount(image[..., c].ravel(), minlength=NUM_LEVELS)
                     for c in range(image.shape[-1])]).astype(np.float64)


def compute_reference(paths, bands: int | None = None) -> np.ndarray:
    """Mean of the images' normalised per-band histograms: float64 (C, 256), each row sums to 1.

    Every image weighs the same whatever its size, so one big scene does not dominate.
    """
    from landseg.data.io import read_image

    paths = list(paths)
    if not paths:
        raise ValueError("compute_reference needs at least one image")
    total = None
    for p in paths:
        h = image_histogram(read_image(p, bands=bands))
        h /= h.sum(axis=1, keepdims=True)
        if total is not None and h.shape != total.shape:
            from landseg.data.errors import DataError

            raise DataError(p, f"has {h.shape[0]} band(s), the other images have {total.shape[0]}")
        total = h if total is None else total + h
    return total / len(paths)


def as_reference_histogram(reference) -> np.ndarray:
    """A reference image (H, W, C), histogram (C, 256) or a path to a saved one -> histogram."""
    if isinstance(reference, (str, os.PathLike)):
        return load_reference(reference)
    ref = np.asarray(reference)
    if ref.ndim == 2 and ref.shape[1] == NUM_LEVELS and ref.dtype.kind == "f":
        return _check_histogram(ref.astype(np.float64), "reference histogram")
    return image_histogram(ref)


def save_reference(path: str | os.PathLike, reference: np.ndarray) -> None:
    """Save a reference histogram (C, 256) as .npy, atomically."""
    ref = _check_histogram(np.asarray(reference, np.float64), os.fspath(path))
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, ref)


def load_reference(path: str | os.PathLike) -> np.ndarray:
    path = os.fspath(path)
    try:
        ref = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        from landseg.data.errors import DataError

        raise DataError(path, f"not a saved histogram reference ({e})") from e
    return _check_histogram(ref.astype(np.float64), path)


def _check_histogram(ref: np.ndarray, where: str) -> np.ndarray:
    if ref.ndim != 2 or ref.shape[1] != NUM_LEVELS or not np.all(np.isfinite(ref)) or (ref < 0).any():
        raise ValueError(f"{where}: a histogram reference is a non-negative (bands, 256) array, got {ref.shape}")
    if (ref.sum(axis=1) <= 0).any():
        raise ValueError(f"{where}: every band of a histogram reference needs some mass")
    return ref


def as_hwc_uint8(image, what: str = "histogram matching") -> np.ndarray:
    """A uint8 (H, W, C) view of ``image`` (grey (H, W) gains a band axis); ``what`` names the caller in errors."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{what} takes uint8 images (as read from disk), got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"{what} takes (H, W, C) images, got shape {image.shape}")
    return image


# ---------------------------------------------------------------------- numpy
def lookup_table_np(source_hist: np.ndarray, reference_hist: np.ndarray) -> np.ndarray:
    """(C, 256) uint8 table mapping each source grey level to its matched level."""
    lut = np.zeros(source_hist.shape, np.uint8)
    for c in range(source_hist.shape[0]):
        values = np.nonzero(reference_hist[c])[0]
        ref_q = np.cumsum(reference_hist[c][values]) / reference_hist[c].sum()
        src_q = np.cumsum(source_hist[c]) / source_hist[c].sum()
        lut[c] = np.interp(src_q, ref_q, values).astype(np.uint8)
    return lut


def match_histograms_np(image: np.ndarray, reference) -> np.ndarray:
    """numpy twin of :func:`match_histograms` (uint8 in, uint8 out); used at prediction time."""
    image = as_hwc_uint8(image)
    ref = as_reference_histogram(reference)
    if ref.shape[0] != image.shape[-1]:
        raise ValueError(f"image has {image.shape[-1]} band(s), reference has {ref.shape[0]}")
    lut = lookup_table_np(image_histogram(image), ref)
    out = np.empty_like(image)
    for c in range(image.shape[-1]):
        out[..., c] = lut[c][image[..., c]]
    return out


# ---------------------------------------------------------------------- TensorFlow
def _tf():
    import tensorflow as tf

    return tf


def histogram_tf(image):
    """Per-band counts of a uint8 (H, W, C) tensor: float64 (C, 256)."""
    tf = _tf()
    bands = image.shape[-1]
    if bands is not None:  # one bincount per band: ~1.5x faster than one over offset values
        return tf.stack([tf.math.bincount(tf.cast(image[..., b], tf.int32), minlength=NUM_LEVELS,
                                          maxlength=NUM_LEVELS, dtype=tf.float64) for b in range(bands)])
    c = tf.shape(image)[-1]
    flat = tf.reshape(tf.cast(image, tf.int32), [-1, c]) + tf.range(c) * NUM_LEVELS
    counts = tf.math.bincount(tf.reshape(flat, [-1]), minlength=c * NUM_LEVELS, maxlength=c * NUM_LEVELS,
                              dtype=tf.float64)
    return tf.reshape(counts, [c, NUM_LEVELS])


def lookup_table_tf(source_hist, reference_hist):
    """TF version of :func:`lookup_table_np` without ragged arrays.

    ``np.interp(x, xp, fp)`` over the occupied reference levels is rebuilt from the full
    256-level cumulative curve: for each x, ``lo`` is the last occupied level whose
    quantile is <= x and ``hi`` the next occupied level; levels outside the curve clamp.
    """
    tf = _tf()
    levels = tf.range(NUM_LEVELS)
    src_q = tf.math.cumsum(source_hist, axis=1) / tf.reduce_sum(source_hist, axis=1, keepdims=True)
    occupied = reference_hist > 0
    ref_q = tf.math.cumsum(reference_hist, axis=1) / tf.reduce_sum(reference_hist, axis=1, keepdims=True)
    # last occupied level <= k, and first occupied level > k, for every k (C, 256)
    le = levels[None, :] <= levels[:, None]  # [k, i]: i <= k
    occ_idx = tf.where(occupied, levels[None], -1)  # (C, 256)
    last_upto = tf.reduce_max(tf.where(le[None], occ_idx[:, None, :], -1), axis=2)
    occ_idx_hi = tf.where(occupied, levels[None], NUM_LEVELS)
    first_after = tf.reduce_min(tf.where(~le[None], occ_idx_hi[:, None, :], NUM_LEVELS), axis=2)
    first_level = tf.reduce_min(occ_idx_hi, axis=1, keepdims=True)
    last_level = tf.reduce_max(occ_idx, axis=1, keepdims=True)

    pos = tf.searchsorted(ref_q, src_q, side="right") - 1  # last level with quantile <= x, -1 if none
    lo = tf.where(pos >= 0, tf.gather(last_upto, tf.maximum(pos, 0), batch_dims=1), -1)
    lo_c = tf.maximum(lo, 0)
    hi = tf.minimum(tf.gather(first_after, lo_c, batch_dims=1), NUM_LEVELS - 1)
    q_lo = tf.gather(ref_q, lo_c, batch_dims=1)
    q_hi = tf.gather(ref_q, hi, batch_dims=1)
    lo_f, hi_f = tf.cast(lo_c, tf.float64), tf.cast(hi, tf.float64)
    interp = (hi_f - lo_f) / tf.where(q_hi > q_lo, q_hi - q_lo, 1.0) * (src_q - q_lo) + lo_f
    value = tf.where(lo < 0, tf.cast(first_level, tf.float64) + 0 * src_q,
                     tf.where((lo >= last_level) | tf.equal(q_lo, src_q), lo_f, interp))
    return tf.cast(tf.clip_by_value(tf.floor(value), 0, 255), tf.uint8)


_compiled_apply = None


def use_xla() -> bool:
    """XLA for the per-pixel passes, unless ``LANDSEG_NO_XLA=1``."""
    return os.environ.get("LANDSEG_NO_XLA", "") in ("", "0")


XLA_MIN_PIXELS = 1 << 20


def run_bucketed(fn, flat, plain_fn=None, pad_value=0):
    """Call a jit-compiled ``fn`` on ``flat`` (N, ...) padded to a bucketed length, return ``[:N]``.

    XLA compiles once per input shape (~0.5 s each); datasets whose scenes all differ in
    size (Dubai) would compile once per scene. Padding the flattened pixels up to one of
    four lengths per octave bounds the compilations, for at most 25% padding; and inputs
    under ``XLA_MIN_PIXELS`` go to ``plain_fn`` (uncompiled), where a compilation would
    cost more than it saves.
    """
    tf = _tf()
    n = tf.shape(flat)[0]
    if plain_fn is not None:
        return tf.cond(n >= XLA_MIN_PIXELS, lambda: run_bucketed(fn, flat, None, pad_value), lambda: plain_fn(flat))
    octave = tf.cast(tf.math.ceil(tf.math.log(tf.cast(tf.maximum(n, 1), tf.float32)) / tf.math.log(2.0)), tf.int32)
    step = tf.bitwise.left_shift(1, tf.maximum(octave - 2, 12))
    size = (n + step - 1) // step * step
    pad = [[0, size - n]] + [[0, 0]] * (flat.shape.rank - 1)
    out = fn(tf.pad(flat, pad, constant_values=pad_value))
    return tf.nest.map_structure(lambda t: t[:n], out)


def _apply_lookup(image, lut):
    """The per-pixel lookup, XLA-compiled where possible.

    Without XLA the cast/offset/gather makes three full-size int32 temporaries; XLA fuses
    them into one pass (about 10x faster on CPU, and what makes TF matching beat
    scikit-image). ``LANDSEG_NO_XLA=1`` turns it off.
    """
    global _compiled_apply
    if not use_xla():
        return apply_lookup_tf(image, lut)
    tf = _tf()
    if _compiled_apply is None:
        _compiled_apply = tf.function(apply_lookup_tf, jit_compile=True)
    shape = tf.shape(image)
    flat = tf.reshape(image, [-1, 1, shape[-1]])  # (N, 1, C): apply_lookup_tf works on any (..., C)
    out = run_bucketed(lambda x: _compiled_apply(x, lut), flat, plain_fn=lambda x: apply_lookup_tf(x, lut))
    return tf.reshape(out, shape)


def apply_lookup_tf(image, lut):
    tf = _tf()
    c = tf.shape(image)[-1]
    flat = tf.reshape(tf.cast(image, tf.int32), [-1, c]) + tf.range(c) * NUM_LEVELS
    return tf.reshape(tf.gather(tf.reshape(lut, [-1]), flat), tf.shape(image))


def match_histograms(image, reference):
    """Match a uint8 (H, W, C) image's per-band histograms to ``reference``; returns uint8.

    ``reference``: a uint8 (H', W', C) image, a (C, 256) float histogram (e.g. from
    :func:`compute_reference`), or the path of a saved one. Pure TF ops, so it runs
    inside ``tf.data`` ``map`` functions and graphs. Agrees with
    ``skimage.exposure.match_histograms(image, reference, channel_axis=-1)``.
    """
    tf = _tf()
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(f"match_histograms needs a uint8 image, got {image.dtype.name}")
    if isinstance(reference, (str, os.PathLike)) or (isinstance(reference, np.ndarray) and reference.dtype.kind == "f"):
        ref_hist = tf.constant(as_reference_histogram(reference), tf.float64)
    else:
        reference = tf.convert_to_tensor(reference)
        if reference.dtype == tf.uint8:
            ref_hist = histogram_tf(reference)
        else:
            ref_hist = tf.cast(reference, tf.float64)
    squeeze = image.shape.rank == 2
    if squeeze:
        image = image[..., None]
    lut = lookup_table_tf(histogram_tf(image), ref_hist)
    out = _apply_lookup(image, lut)
    return out[..., 0] if squeeze else out
