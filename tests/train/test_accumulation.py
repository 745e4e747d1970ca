"""Gradient accumulation: N accumulated batches of size B give the same update as one batch of N*B."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from landseg.config_schema import OptimizerSection  # noqa: E402
from landseg.training.setup import make_optimizer  # noqa: E402


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Conv2D(3, 1, activation="softmax")(x)
    return keras.Model(inp, out)


def _train(opt_cfg, accum, batch, x, y, init):
    from landseg.losses import get_loss

    model = _tiny_model()
    model.set_weights(init)
    model.compile(optimizer=make_optimizer(opt_cfg, accum), loss=get_loss("partial_ce", 3, ignore_index=255))
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("opt_cfg", [
    OptimizerSection(name="sgd", lr=0.5, momentum=0.9, weight_decay=0.0, clipnorm=None),
    OptimizerSection(name="adamw", lr=0.01, momentum=0.9, weight_decay=0.01, clipnorm=None),
])
def test_accumulated_update_equals_large_batch(opt_cfg):
    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, (8, 8, 8)).astype("int32")
    init = _tiny_model().get_weights()
    large = _train(opt_cfg, 1, 8, x, y, init)  # one update on 8 images
    accumulated = _train(opt_cfg, 4, 2, x, y, init)  # 4 batches of 2, one update
    plain_small = _train(opt_cfg, 1, 2, x, y, init)  # 4 updates: must differ, else the test proves nothing
    for a, b, c, w0 in zip(large, accumulated, plain_small, init):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, w0) for a, w0 in zip(large, init)), "the large batch did not move the weights"
    assert any(not np.allclose(a, c, atol=1e-4) for a, c in zip(large, plain_small))
