"""tf.data input pipeline: decode, check, match histograms, cache scenes, crop, augment, batch.

Why each step is where it is:

* Files are decoded with TF ops (JPEG with the accurate DCT, so pixels equal PIL's and
  therefore what ``prepare_image`` sees at prediction time). Masks that TF cannot read
  as stored (palette PNGs holding class *indices*, TIFF, 16-bit) go through the numpy
  reader instead: one ``numpy_function`` per scene, then cached.
* Masks are decoded with ``classmap.raw_lookup()``, the same table ``decode_mask`` uses.
  A colour the class map does not define stops the pipeline with the numpy reader's
  error (file, colours, pixel counts) unless ``unknown_to_ignore=True`` asks for those
  pixels to be ignored.
* Histogram matching runs on the whole scene, before cropping, so every crop of a scene
  gets the same transform (as the whole scene does at prediction time); the matched
  scenes are cached, so it runs once per scene.
* Training crops are random (optionally centred on a class drawn uniformly from the
  classes present, which favours rare classes); flips and 90-degree rotations move
  image and mask together. Validation tiles each scene into a padded grid of crops
  (padding labelled ignore), so every pixel is scored exactly once.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from landseg.classmaps import ClassMap, get_classmap
from landseg.data.arrays import no_model_autotune
from landseg.data.errors import DataError
from landseg.data.histogram import NUM_LEVELS, as_reference_histogram, run_bucketed, use_xla
from landseg.data.formats import TIFF_EXTENSIONS
from landseg.data.io import read_image, read_mask
from landseg.data.layouts import Sample

log = logging.getLogger(__name__)

_TF_MASK_MODES = {"RGB", "RGBA", "L", "LA"}
_TF_IMAGE_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}
_TF_IMAGE_MODES = {"RGB", "RGBA", "L", "LA", "P"}


def _tf():
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------------- up-front checks
def _header(path: str, what: str):
    """(format, mode, (w, h), bands, transparency) of an image file, None for TIFF; a missing, empty,
    unreadable or truncated (JPEG/PNG) file raises :class:`DataError`. Remembered per file size and
    mtime (:mod:`landseg.data.integrity`), so a second run costs one ``stat`` per file."""
    from landseg.io_utils import file_problem

    problem = file_problem(path)
    if problem is not None:
        raise DataError(path, f"{what}: {problem}")
    if path.lower().endswith(TIFF_EXTENSIONS):
        return None
    from landseg.data import integrity

    header = integrity.cached(path, "header", lambda: _read_header(path, what))
    return tuple(tuple(v) if isinstance(v, list) else v for v in header)


def _read_header(path: str, what: str) -> list:
    from landseg.data.integrity import check_complete

    try:
        with Image.open(path) as im:
            header = [im.format, im.mode, list(im.size), len(im.getbands()), "transparency" in im.info]
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(path, f"unreadable {what} ({e})") from e
    check_complete(path, header[0], what)
    return header


def plan_samples(samples: Sequence[Sample], classmap: ClassMap, bands: int = 3,
                 raster_norm=None) -> list[tuple[str, str, int, int]]:
    """Check every sample's headers and choose a decoder: ``(image, mask, image_route, mask_route)``.

    Routes: 0 = TF decoder, 1 = numpy reader, 2 (images) = rasterio reader of GeoTIFF and
    other GDAL rasters (band selection and stretch by ``raster_norm``, nodata -> no label);
    mask route 2 = TF reader of class indices.
    Catches missing/unreadable files, band-count and image/mask size mismatches before
    training starts instead of an opaque error mid-epoch.
    """
    from landseg.data.raster import raster_shape, select_bands, use_rasterio

    plan = []
    for s in samples:
        if s.mask is None:
            raise DataError(s.image, "has no mask; build_dataset needs labelled samples")
        ih, mh = _header(s.image, "image"), _header(s.mask, "mask")
        image_route = 1
        if use_rasterio(s.image):
            image_route = 2
            from landseg.data.raster import open_raster

            with open_raster(s.image) as ds:
                nb = len(select_bands(ds, raster_norm.bands if raster_norm is not None else None, os.fspath(s.image)))
                size = (ds.width, ds.height)
            if nb != bands:
                raise DataError(s.image, f"raster has {nb} (selected) band(s), expected {bands} (data.bands)")
            if s.mask is not None and use_rasterio(s.mask):
                mh_, mw_, _ = raster_shape(s.mask)
                if (mw_, mh_) != size:
                    raise DataError(s.mask, f"mask is {mw_}x{mh_} but its image {s.image} is {size[0]}x{size[1]} "
                                    "(width x height)")
        elif ih is not None:
            fmt, mode, size, nb, transparency = ih
            if mode == "P":
                nb = 4 if transparency else 3
            if nb != bands and not (nb == bands + 1 and (mode in ("RGBA", "LA") or transparency)):
                raise DataError(s.image, f"image has {nb} band(s) ({mode}), expected {bands}")
            image_route = 0 if fmt in _TF_IMAGE_FORMATS and mode in _TF_IMAGE_MODES else 1
        mask_route = 1
        if mh is not None:
            fmt, mode, msize, _, _ = mh
            if ih is not None and msize != ih[2]:
                raise DataError(s.mask, f"mask is {msize[0]}x{msize[1]} but its image {s.image} is "
                                f"{ih[2][0]}x{ih[2][1]} (width x height)")
            tf_ok = fmt in ("PNG", "BMP", "GIF") and (mode in _TF_MASK_MODES or (mode == "P" and classmap.mask_kind == "rgb"))
            if s.decoded:
                mask_route = 2 if tf_ok and mode in ("L", "LA") else 1
            else:
                mask_route = 0 if tf_ok else 1
        plan.append((os.fspath(s.image), os.fspath(s.mask), image_route, mask_route))
    from landseg.data import integrity

    integrity.save()
    return plan


def scene_sizes(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """``(width, height)`` of each sample's image, from the headers ``plan_samples`` cached."""
    from landseg.data.raster import raster_shape, use_rasterio

    sizes = []
    for s in samples:
        if use_rasterio(s.image):
            h, w, _ = raster_shape(s.image)
            sizes.append((w, h))
        else:
            sizes.append(tuple(_header(s.image, "image")[2]))
    return sizes


# ---------------------------------------------------------------------- decoding
def _read_raster_with_valid(path: str, bands: int, raster_norm) -> np.ndarray:
    """rasterio reader: (H, W, bands + 1) uint8, the last band 255 where valid, 0 where nodata."""
    from landseg.data.raster import Normalisation, read_raster

    image, valid = read_raster(path, raster_norm or Normalisation())
    return np.concatenate([image, (valid * 255).astype(np.uint8)[..., None]], axis=-1)


def _decode_image_tf(path, route, bands: int, raster_norm=None, with_valid: bool = False):
    """(H, W, bands) uint8, or with ``with_valid`` (H, W, bands + 1): last band 255 = valid, 0 = nodata."""
    tf = _tf()

    def with_tf():
        data = tf.io.read_file(path)
        return tf.cond(tf.io.is_jpeg(data),
                       lambda: tf.io.decode_jpeg(data, channels=0, dct_method="INTEGER_ACCURATE"),
                       lambda: tf.io.decode_image(data, channels=0, expand_animations=False))

    def with_numpy():
        return tf.numpy_function(lambda p: read_image(p.decode(), bands=bands), [path], tf.uint8, stateful=False)

    def plain():
        image = tf.cond(tf.equal(route, 0), with_tf, with_numpy)
        image = image[..., :bands]  # an alpha band beyond `bands` (checked in plan_samples)
        if with_valid:
            image = tf.concat([image, tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), tf.constant(255, tf.uint8))], -1)
        return image

    if not with_valid:
        image = plain()
        image.set_shape([None, None, bands])
        return image

    def with_rasterio():
        return tf.numpy_function(lambda p: _read_raster_with_valid(p.decode(), bands, raster_norm), [path], tf.uint8,
                                 stateful=False)

    image = tf.cond(tf.equal(route, 2), with_rasterio, plain)
    image.set_shape([None, None, bands + 1])
    return image


def _mask_lookup_fn(classmap: ClassMap):
    """raw mask -> (class indices, all values known), as one fused pass.

    Compares the raw keys with each of the class map's few colours/values (the same
    ``raw_lookup`` table ``decode_mask`` uses). Under XLA the comparisons fuse into one
    pass over the pixels: ~50x faster than a per-pixel binary search on CPU.
    """
    tf = _tf()
    keys, classes = classmap.raw_lookup()
    ignore = classmap.ignore_index
    rgb, binarize = classmap.mask_kind == "rgb", classmap.binarize
    if classmap.mask_kind == "grey":  # every grey level is known: a threshold
        threshold = classmap.grey_threshold

        def lookup(raw):
            return tf.cast(raw >= threshold, tf.uint8), tf.constant(True)

        return lookup

    def lookup_pixels(raw):
        """(..., 3) or (...) raw values -> (class indices, known) per pixel."""
        if rgb:
            if binarize is not None:
                raw = tf.where(raw >= binarize, tf.constant(255, tf.uint8), tf.constant(0, tf.uint8))
            raw = tf.cast(raw, tf.int32)
            k = raw[..., 0] * 65536 + raw[..., 1] * 256 + raw[..., 2]
        else:
            k = tf.cast(raw, tf.int32)
        mask = tf.fill(tf.shape(k), tf.constant(ignore, tf.uint8))
        known = tf.zeros(tf.shape(k), tf.bool)
        for key, cls in zip(keys.tolist(), classes.tolist()):
            eq = tf.equal(k, key)
            mask = tf.where(eq, tf.constant(cls, tf.uint8), mask)
            known = known | eq
        return mask, known

    def lookup(raw):
        mask, known = lookup_pixels(raw)
        return mask, tf.reduce_all(known)

    if not use_xla():
        return lookup
    compiled = tf.function(lambda flat: lookup_pixels(flat), jit_compile=True)

    def bucketed(raw):
        flat = tf.reshape(raw, [-1, 3] if rgb else [-1])
        mask, known = run_bucketed(compiled, flat, plain_fn=lookup_pixels)  # padding is cut off before reduce_all
        return tf.reshape(mask, tf.shape(raw)[:2]), tf.reduce_all(known)

    return bucketed


def _decode_mask_tf(path, route, classmap: ClassMap, unknown_to_ignore: bool, decoded: bool):
    """Route 0: TF decode + lookup; route 1: numpy reader; route 2: stored class indices (TF)."""
    tf = _tf()
    ignore = classmap.ignore_index

    def numpy_reader():
        return tf.numpy_function(lambda p: _read_mask_reporting(p.decode(), classmap, unknown_to_ignore, decoded),
                                 [path], tf.uint8, stateful=False)

    lookup_fn = _mask_lookup_fn(classmap)

    def lookup():
        data = tf.io.read_file(path)
        if classmap.mask_kind == "rgb":
            raw = tf.io.decode_png(data, channels=3)
        else:
            raw = tf.io.decode_png(data, channels=0)
            tf.debugging.assert_equal(tf.reduce_all(tf.equal(raw[..., :1], raw[..., : tf.minimum(tf.shape(raw)[-1], 3)])),
                                      True, message="single-band mask expected (bands differ)")
            raw = raw[..., 0]
        mask, all_known = lookup_fn(raw)
        # On unknown values the numpy reader raises its full report (file, colours, counts),
        # or with unknown_to_ignore logs that report and returns the same mask.
        return tf.cond(all_known, lambda: mask, numpy_reader)

    def stored_indices():
        raw = tf.io.decode_png(tf.io.read_file(path), channels=1)[..., 0]
        valid = tf.reduce_all((raw < classmap.num_classes) | tf.equal(raw, ignore))
        return tf.cond(valid, lambda: raw, numpy_reader)

    mask = tf.switch_case(tf.cast(route, tf.int32), [lookup, numpy_reader, stored_indices])
    mask.set_shape([None, None])
    return mask


def _read_mask_reporting(path: str, classmap: ClassMap, unknown_to_ignore: bool, decoded: bool) -> np.ndarray:
    """numpy mask reader that logs, per file, which unknown values it mapped to ignore."""
    if decoded or not unknown_to_ignore or path.lower().endswith(TIFF_EXTENSIONS):
        return read_mask(path, classmap, unknown_to_ignore=unknown_to_ignore, decoded=decoded)
    from landseg.data.io import decode_mask_array, read_mask_raw

    mask, unknown = decode_mask_array(read_mask_raw(path, classmap), classmap, path, unknown_to_ignore=True)
    if unknown:
        log.warning("%s: %d px with values not in class map %r mapped to ignore: %s", path, sum(unknown.values()),
                    classmap.name, ", ".join(f"{v} ({c} px)" for v, c in unknown.items()))
    return mask


def ignore_index_of(cm: ClassMap) -> int:
    return int(cm.ignore_index)


def _match(image, ref_hist):
    from landseg.data.histogram import _apply_lookup, histogram_tf, lookup_table_tf

    return _apply_lookup(image, lookup_table_tf(histogram_tf(image), ref_hist))


# ---------------------------------------------------------------------- crops and augmentation
def _pad_to(image, mask, height, width, ignore):
    tf = _tf()
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    ph, pw = tf.maximum(height - h, 0), tf.maximum(width - w, 0)
    image = tf.pad(image, [[0, ph], [0, pw], [0, 0]])
    mask = tf.pad(mask, [[0, ph], [0, pw]], constant_values=ignore)
    return image, mask


def _random_crop(image, mask, seed, ch, cw, ignore, num_classes, rare_fraction):
    """A random crop; with probability ``rare_fraction`` centred on a pixel of a class drawn
    uniformly among those present (so rare classes are picked as often as common ones)."""
    tf = _tf()
    image, mask = _pad_to(image, mask, ch, cw, ignore)
    h, w = tf.shape(mask)[0], tf.shape(mask)[1]
    s = tf.random.experimental.stateless_split(seed, 4)
    y0 = tf.random.stateless_uniform([], s[0], 0, h - ch + 1, dtype=tf.int32)
    x0 = tf.random.stateless_uniform([], s[1], 0, w - cw + 1, dtype=tf.int32)
    if rare_fraction > 0:
        def centred():
            sub = mask[::4, ::4]  # sample positions on a coarse grid: 16x cheaper, same classes
            counts = tf.math.bincount(tf.cast(tf.reshape(sub, [-1]), tf.int32), minlength=num_classes,
                                      maxlength=num_classes)
            present = tf.cast(counts > 0, tf.float32)
            logits = tf.math.log(present + 1e-30)[None]
            cls = tf.cast(tf.random.stateless_categorical(logits, 1, s[2])[0, 0], tf.uint8)
            where = tf.where(tf.equal(sub, cls)) * 4
            pick = tf.random.stateless_uniform([], s[3], 0, tf.shape(where, out_type=tf.int64)[0], dtype=tf.int64)
            cy, cx = tf.cast(where[pick][0], tf.int32), tf.cast(where[pick][1], tf.int32)
            return (tf.clip_by_value(cy - ch // 2, 0, h - ch), tf.clip_by_value(cx - cw // 2, 0, w - cw))

        use = tf.random.stateless_uniform([], s[3] + 1, 0, 1) < rare_fraction
        labelled = tf.reduce_any(mask[::4, ::4] < num_classes)
        y0, x0 = tf.cond(use & labelled, centred, lambda: (y0, x0))
    return image[y0:y0 + ch, x0:x0 + cw], mask[y0:y0 + ch, x0:x0 + cw]


def _augment(image, mask, seed, flips: bool, rotate90: bool, square: bool):
    """Flips and quarter turns applied to image and mask stacked together, so they never part."""
    tf = _tf()
    stacked = tf.concat([image, mask[..., None]], axis=-1)
    s = tf.random.experimental.stateless_split(seed, 3)
    if flips:
        stacked = tf.cond(tf.random.stateless_uniform([], s[0]) < 0.5, lambda: stacked[:, ::-1], lambda: stacked)
        stacked = tf.cond(tf.random.stateless_uniform([], s[1]) < 0.5, lambda: stacked[::-1], lambda: stacked)
    if rotate90:
        k = tf.random.stateless_uniform([], s[2], 0, 4 if square else 2, dtype=tf.int32)
        k = k if square else k * 2  # half turns only keep a non-square crop's shape
        stacked = tf.image.rot90(stacked, k)
    return stacked[..., :-1], stacked[..., -1]


def _color_jitter(image, seed, strength: float):
    """Random brightness, contrast, saturation and hue of a uint8 crop -> float32 on the 0-255 scale.

    Scenes of one dataset differ in sun, season, haze and sensor processing; jitter makes a
    model trained on a few tiles less sensitive to that. ``strength`` 1 means brightness
    +-0.2, contrast and saturation x0.7-1.3, hue +-0.05 (on [0, 1] images); saturation and
    hue only for 3-band images.
    """
    tf = _tf()
    s = tf.random.experimental.stateless_split(seed, 4)
    x = tf.cast(image, tf.float32) / 255.0
    x = tf.image.stateless_random_brightness(x, 0.2 * strength, s[0])
    x = tf.image.stateless_random_contrast(x, 1 - 0.3 * strength, 1 + 0.3 * strength, s[1])
    if image.shape[-1] == 3:
        x = tf.image.stateless_random_saturation(x, 1 - 0.3 * strength, 1 + 0.3 * strength, s[2])
        x = tf.image.stateless_random_hue(x, 0.05 * strength, s[3])
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def _scale_jitter(image, mask, seed, ch, cw, ignore, amount: float):
    """Crop ``(ch, cw) / s`` with ``s`` drawn log-uniformly from ``[1 / (1 + amount), 1 + amount]``, resized
    back to ``(ch, cw)``: image bilinear, mask nearest (so labels stay labels). Scenes of other regions or
    sensors show fields, buildings and roads at other pixel sizes; this shows the model a range of them."""
    tf = _tf()
    s = tf.random.experimental.stateless_split(seed, 3)
    log_max = float(np.log1p(amount))
    scale = tf.exp(tf.random.stateless_uniform([], s[0], -log_max, log_max))
    sh = tf.maximum(1, tf.cast(tf.round(ch / scale), tf.int32))
    sw = tf.maximum(1, tf.cast(tf.round(cw / scale), tf.int32))
    image, mask = _pad_to(image, mask, sh, sw, ignore)
    h, w = tf.shape(mask)[0], tf.shape(mask)[1]
    y0 = tf.random.stateless_uniform([], s[1], 0, h - sh + 1, dtype=tf.int32)
    x0 = tf.random.stateless_uniform([], s[2], 0, w - sw + 1, dtype=tf.int32)
    image = tf.image.resize(image[y0:y0 + sh, x0:x0 + sw], (ch, cw), method="bilinear")
    mask = tf.image.resize(mask[y0:y0 + sh, x0:x0 + sw, None], (ch, cw), method="nearest")[..., 0]
    return tf.cast(tf.round(image), tf.uint8), tf.cast(mask, tf.uint8)


def _blur(image, seed, probability: float, max_sigma: float = 1.5):
    """With ``probability``, a Gaussian blur of sigma in [0.3, ``max_sigma``] px (separable, per band):
    haze, defocus and resampling soften other scenes' edges. Returns float32 on the input's 0-255 scale."""
    tf = _tf()
    s = tf.random.experimental.stateless_split(seed, 2)
    x = tf.cast(image, tf.float32)
    sigma = tf.random.stateless_uniform([], s[0], 0.3, max_sigma)
    radius = int(np.ceil(3 * max_sigma))
    t = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * (t / sigma) ** 2)
    k = k / tf.reduce_sum(k)
    bands = image.shape[-1]
    kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, bands, 1])
    ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, bands, 1])
    padded = tf.pad(x[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID"), ky, [1, 1, 1, 1],
                                     "VALID")[0]
    return tf.cond(tf.random.stateless_uniform([], s[1]) < probability, lambda: blurred, lambda: x)


def _grid_tiles(image, mask, ch, cw, ignore):
    """Deterministic non-overlapping crops covering the whole scene (padded, padding ignored)."""
    tf = _tf()
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    ny, nx = (h + ch - 1) // ch, (w + cw - 1) // cw
    image, mask = _pad_to(image, mask, ny * ch, nx * cw, ignore)
    c = tf.shape(image)[-1]
    tiles = tf.reshape(tf.transpose(tf.reshape(image, [ny, ch, nx, cw, c]), [0, 2, 1, 3, 4]), [-1, ch, cw, c])
    masks = tf.reshape(tf.transpose(tf.reshape(mask, [ny, ch, nx, cw]), [0, 2, 1, 3]), [-1, ch, cw])
    return tiles, masks


# ---------------------------------------------------------------------- public entry point
def build_dataset(samples: Sequence[Sample], classmap, *, training: bool, crop_size, batch_size: int,
                  hist_reference=None, flips: bool = True, rotate90: bool = True, rare_class_crops=False,
                  cache="auto", seed: int = 0, bands: int = 3, crops_per_image: int = 1,
                  unknown_to_ignore: bool = False, shuffle_buffer: int | None = None,
                  drop_remainder: bool | None = None, num_parallel_calls=None, raster_norm=None,
                  color_jitter: float = 0.0, scale_jitter: float = 0.0, blur: float = 0.0):
    """Build a ``tf.data.Dataset`` of ``(float32 (B, h, w, C) in [0, 1], int32 (B, h, w))``.

    ``training=True``: per epoch, ``crops_per_image`` random crops of every scene (scenes
    shuffled, crops shuffled), with flips/90-degree rotations and, if ``color_jitter`` > 0,
    photometric jitter of that strength (``_color_jitter``), with ``scale_jitter`` > 0 crops at random
    scales (``_scale_jitter``) and with ``blur`` > 0 that fraction blurred (``_blur``); deterministic for a given
    ``seed`` yet different in each epoch. ``rare_class_crops``: False, True (half of the
    crops centred on a class drawn uniformly among those present) or that fraction.
    ``training=False``: every scene tiled into a padded grid of ``crop_size`` crops, in
    order; padding is labelled ``ignore_index``. ``cache``: True (memory), False, a file
    prefix for ``Dataset.cache``, or "auto" (``cache_policy.resolve_cache``); decoded and
    histogram-matched scenes are cached. Without a cache the file list is shuffled, not scenes.
    ``hist_reference``: None, a (C, 256) histogram, a saved ``.npy`` path or a uint8 image.
    ``raster_norm``: a :class:`landseg.data.raster.Normalisation` (band selection, per-band stretch)
    for GeoTIFF / GDAL images, which are read with rasterio; their nodata pixels are labelled
    ``ignore_index``, so loss and metrics skip them.
    """
    tf = _tf()
    cm = get_classmap(classmap)
    ch, cw = (crop_size, crop_size) if np.isscalar(crop_size) else tuple(int(v) for v in crop_size)
    if not samples:
        raise ValueError("build_dataset got no samples")
    plan = plan_samples(samples, cm, bands, raster_norm)
    with_valid = any(route == 2 for _, _, route, _ in plan)
    decoded_flags = [bool(s.decoded) for s in samples]
    autotune = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    ref_hist = None
    if hist_reference is not None:
        ref = as_reference_histogram(hist_reference)
        if ref.shape != (bands, NUM_LEVELS):
            raise ValueError(f"histogram reference has shape {ref.shape}, expected ({bands}, {NUM_LEVELS})")
        ref_hist = tf.constant(ref, tf.float64)
    if unknown_to_ignore:
        log.warning("mask values not in class map %r are mapped to ignore (%d); each file with such values is "
                    "logged with their counts when first read", cm.name, cm.ignore_index)

    columns = tuple(list(col) for col in zip(*plan)) + (decoded_flags,)
    ds = tf.data.Dataset.from_tensor_slices(columns)

    def load(image_path, mask_path, image_route, mask_route, decoded):
        image = _decode_image_tf(image_path, image_route, bands, raster_norm, with_valid)
        mask = tf.cond(decoded,
                       lambda: _decode_mask_tf(mask_path, mask_route, cm, unknown_to_ignore, True),
                       lambda: _decode_mask_tf(mask_path, mask_route, cm, unknown_to_ignore, False))
        if with_valid:  # image nodata -> no label
            valid = image[..., bands] > 0
            image = image[..., :bands]
            tf.debugging.assert_equal(tf.shape(valid), tf.shape(mask),
                                      message=tf.strings.join(["image/mask size mismatch: ", image_path]))
            mask = tf.where(valid, mask, tf.constant(ignore_index_of(cm), tf.uint8))
        tf.debugging.assert_equal(tf.shape(image)[:2], tf.shape(mask),
                                  message=tf.strings.join(["image/mask size mismatch: ", image_path]))
        if ref_hist is not None:
            image = _match(image, ref_hist)
        return image, mask

    if cache == "auto":
        from landseg.data.cache_policy import resolve_cache

        cache = resolve_cache("auto", scene_sizes(samples), bands)
    if training and not cache:  # shuffle the file list: memory stays a few decoded scenes, whatever the dataset
        ds = ds.shuffle(len(plan), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=autotune, deterministic=True)
    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))

    ignore = cm.ignore_index
    if training:
        rare = 0.5 if rare_class_crops is True else float(rare_class_crops or 0.0)
        if cache:  # cached scenes are shuffled after the cache (which would replay one order otherwise)
            ds = ds.shuffle(len(plan), seed=seed, reshuffle_each_iteration=True)
        if crops_per_image > 1:
            ds = ds.flat_map(lambda i, m: tf.data.Dataset.from_tensors((i, m)).repeat(crops_per_image))
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

        def crop_augment(scene, element_seed):
            image, mask = scene
            s = tf.random.experimental.stateless_split(element_seed, 2)
            if scale_jitter:  # a larger or smaller window around the (rare-class) crop, resized to the crop size
                margin = int(np.ceil(max(ch, cw) * (1 + scale_jitter)))
                image, mask = _random_crop(image, mask, s[0], margin, margin, ignore, cm.num_classes, rare)
                image, mask = _scale_jitter(image, mask, tf.random.experimental.stateless_fold_in(s[0], 7), ch, cw,
                                            ignore, float(scale_jitter))
            else:
                image, mask = _random_crop(image, mask, s[0], ch, cw, ignore, cm.num_classes, rare)
            image, mask = _augment(image, mask, s[1], flips, rotate90, ch == cw)
            if color_jitter:  # its own seed, so crops and flips stay those of an unjittered run
                image = _color_jitter(image, tf.random.experimental.stateless_fold_in(s[1], 1), float(color_jitter))
            if blur:
                image = _blur(image, tf.random.experimental.stateless_fold_in(s[1], 2), float(blur))
            return image, mask

        ds = ds.map(crop_augment, num_parallel_calls=autotune, deterministic=True)
        buffer = shuffle_buffer if shuffle_buffer is not None else max(4 * batch_size, 16)
        if buffer > 1:
            ds = ds.shuffle(buffer, seed=seed + 1, reshuffle_each_iteration=True)
    else:
        ds = ds.map(lambda i, m: _grid_tiles(i, m, ch, cw, ignore), num_parallel_calls=autotune, deterministic=True)
        ds = ds.unbatch()

    def finish(image, mask):
        image = tf.ensure_shape(tf.cast(image, tf.float32) / 255.0, [ch, cw, bands])
        return image, tf.ensure_shape(tf.cast(mask, tf.int32), [ch, cw])

    ds = ds.map(finish, num_parallel_calls=autotune, deterministic=True)
    if drop_remainder is None:  # full batches in training, unless that would leave an empty epoch
        drop_remainder = training and len(plan) * crops_per_image >= batch_size
    ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder)).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(no_model_autotune())
