"""FastBatchNorm (TF's fused kernel) must compute exactly what keras BatchNormalization does."""

import numpy as np
import pytest


@pytest.mark.parametrize("trainable,affine", [(True, True), (False, True), (True, False)])
def test_fast_batchnorm_matches_keras_batchnorm(trainable, affine):
    """``affine=False``: no scale and no offset (MultiResUNet's BatchNorms have no scale)."""
    import keras
    import tensorflow as tf

    from landseg.models.common import FastBatchNorm

    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (4, 6, 6, 5)).astype("float32"))
    kw = dict(momentum=0.9, scale=affine, center=affine)
    ref, fast = keras.layers.BatchNormalization(**kw), FastBatchNorm(**kw)
    ref.build(x.shape)
    fast.build(x.shape)
    rng = np.random.default_rng(1)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    fast.set_weights(weights)
    ref.trainable = fast.trainable = trainable
    for training in (True, False, True):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y_ref, y_fast = ref(x, training=training), fast(x, training=training)
            l_ref, l_fast = tf.reduce_sum(y_ref ** 3), tf.reduce_sum(y_fast ** 3)
        np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)
        sources = [x, ref.gamma, ref.beta] if trainable and affine else [x]
        g_ref = tape.gradient(l_ref, sources)
        g_fast = tape.gradient(l_fast, [x, fast.gamma, fast.beta] if trainable and affine else [x])
        for a, b in zip(g_fast, g_ref):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
        for a, b in zip(fast.get_weights(), ref.get_weights()):  # moving mean / variance updates
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert fast._fusable(x, None)  # the fused path ran, not Keras' fallback
    assert not np.allclose(fast.get_weights()[-2], weights[-2]) or not trainable  # moving mean moved
