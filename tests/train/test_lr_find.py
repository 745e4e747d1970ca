"""Learning-rate finder: exponential sweep, the suggestion at the steepest fall, weights restored."""

import numpy as np
import pytest

from landseg.training.lr_finder import suggest_lr


def test_suggestion_is_steepest_descent_of_a_known_curve():
    lrs = np.logspace(-6, 0, 61)
    # loss falls along a logistic in log10(lr) centred at 1e-3, then explodes after 1e-1
    losses = 2.0 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 3) * 3)) + np.where(lrs > 0.1, (lrs - 0.1) * 100, 0)
    assert suggest_lr(lrs, losses) == pytest.approx(1e-3, rel=0.05)
    # a truncated sweep (stopped at divergence) gives the same answer
    assert suggest_lr(lrs[:-5], losses[:-5]) == pytest.approx(1e-3, rel=0.05)
    # a loss still falling at the end of the sweep: capped at a tenth of the lowest-loss lr
    falling = 2.0 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 0.2) * 3))
    assert suggest_lr(lrs, falling) == pytest.approx(0.1)


def test_finder_sweeps_and_restores_weights():
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    from landseg.losses import get_loss
    from landseg.training.lr_finder import run_finder
    from landseg.config_schema import OptimizerSection
    from landseg.training.setup import make_optimizer

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(inp))
    model.compile(optimizer=make_optimizer(OptimizerSection(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, clipnorm=None)),
                  loss=get_loss("partial_ce", 3, ignore_index=255))
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 3)).astype("float32")
    y = (x[..., 0] * 3).astype("int32").clip(0, 2)  # learnable from the first band
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    before = [w.copy() for w in model.get_weights()]
    lrs, losses = run_finder(model, ds, 1e-4, 10.0, 30)
    ratios = np.asarray(lrs[1:]) / np.asarray(lrs[:-1])
    np.testing.assert_allclose(ratios, (10.0 / 1e-4) ** (1 / 29), rtol=1e-6)
    assert len(lrs) == len(losses) >= 10
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
