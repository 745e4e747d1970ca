"""In-memory arrays as a ``tf.data`` input for ``model.fit``, for notebook and library users.

Why not hand numpy arrays to ``fit``: Keras turns them into a ``tf.data`` pipeline with the
model-based autotuner on, whose thread can hold the end of a ``fit`` until its next optimisation
period (20.47 s, 40.95 s, ...), so a run on two cores sometimes averages one
(``experiments/results/threads.md``). This dataset has that autotuner off, as landseg's own
pipeline does.
"""

from __future__ import annotations

import numpy as np


def no_model_autotune():
    """tf.data options without the model-based autotuner.

    Why: its background thread sleeps for optimisation periods of 10 ms, 20 ms, ... (capped at 60 s),
    and tearing an iterator down can wait for the current sleep to end, so the end of an epoch is
    rounded up to 20.47 s, 40.95 s, ... (measured: fits of 12.5-13 s took 20.6-20.7 s in 5 of 10
    with it, 0 of 10 without; experiments/bench_tfdata_teardown.py). ``AUTOTUNE`` map parallelism
    then falls back to the runner's threads, and prefetch keeps its own buffer tuning."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def from_arrays(images, masks, batch_size: int, shuffle: bool = False, seed: int | None = None):
    """Batches of ``(images, masks)`` held in memory, ready for ``model.fit`` / ``evaluate``.

    ``images``: (N, H, W, bands) floats as the model takes them; ``masks``: (N, H, W) class ids.
    ``shuffle`` reorders the whole set each epoch (reproducibly with ``seed``). The last batch
    may be smaller, as with ``fit(x, y, batch_size=...)``.
    """
    import tensorflow as tf

    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4 or masks.ndim != 3 or images.shape[:3] != masks.shape:
        raise ValueError(f"from_arrays needs images (N, H, W, bands) and masks (N, H, W) of the same N, H, W; "
                         f"got images {images.shape} and masks {masks.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ds = tf.data.Dataset.from_tensor_slices((images, masks))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(no_model_autotune())
