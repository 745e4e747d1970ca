"""The single definition of "image file -> model input" for numpy callers (prediction).

Training does the same inside tf.data (``landseg.data.pipeline``); tests check that the
two agree, so a model never sees differently prepared images at prediction time.
"""

from __future__ import annotations

import numpy as np

from landseg.data.histogram import as_hwc_uint8, as_reference_histogram, match_histograms_np


def prepare_image(image_uint8: np.ndarray, hist_reference=None) -> np.ndarray:
    """uint8 (H, W, C) -> float32 (H, W, C) in [0, 1], histogram-matched first if a reference is given.

    ``hist_reference``: None, a (C, 256) reference histogram (``hist_reference.npy`` of a
    run), its path, or a uint8 reference image.
    """
    image = as_hwc_uint8(image_uint8, "prepare_image")
    if hist_reference is not None:
        image = match_histograms_np(image, as_reference_histogram(hist_reference))
    return image.astype(np.float32) / np.float32(255.0)
