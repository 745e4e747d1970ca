"""landseg.data.from_arrays: in-memory batches for fit, with tf.data's model autotuner off."""

import numpy as np
import pytest

from landseg.data import from_arrays


def _arrays(n=10, size=4):
    rng = np.random.default_rng(0)
    return rng.random((n, size, size, 3), dtype=np.float32), rng.integers(0, 5, (n, size, size)).astype("int32")


def _collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys), [len(x) for x in xs]


def test_batches_hold_the_arrays_in_order_and_autotuner_is_off():
    x, y = _arrays()
    ds = from_arrays(x, y, batch_size=4)
    got_x, got_y, sizes = _collect(ds)
    assert sizes == [4, 4, 2]
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    assert ds.options().autotune.enabled is False


def test_shuffle_keeps_pairs_reorders_each_epoch_and_repeats_with_seed():
    x, y = _arrays(n=32)
    ds = from_arrays(x, y, batch_size=8, shuffle=True, seed=3)
    first_x, first_y, _ = _collect(ds)
    second_x, _, _ = _collect(ds)
    order = [int(np.flatnonzero((x == img).all(axis=(1, 2, 3)))[0]) for img in first_x]
    assert sorted(order) == list(range(32)) and order != list(range(32))
    np.testing.assert_array_equal(first_y, y[order])  # each mask stays with its image
    assert not np.array_equal(first_x, second_x)
    again_x, _, _ = _collect(from_arrays(x, y, batch_size=8, shuffle=True, seed=3))
    np.testing.assert_array_equal(again_x, first_x)


@pytest.mark.parametrize("images, masks, batch", [
    (np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 5)), 1),
    (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 1),
    (np.zeros((2, 4, 4, 3)), np.zeros((3, 4, 4)), 1),
    (np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4)), 0),
])
def test_mismatched_shapes_and_bad_batch_are_refused(images, masks, batch):
    with pytest.raises(ValueError, match="from_arrays|batch_size"):
        from_arrays(images, masks, batch_size=batch)
