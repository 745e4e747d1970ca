"""AtrousConv2D against Keras' own dilated Conv2D (the reference): same outputs and gradients at every
rate, including rates past the map's side, with the map's size known or not."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from landseg.models.atrous import AtrousConv2D, conv2d


def _pair(kernel, rate, channels=5, filters=4, bias=True):
    ref = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=bias)
    ours = AtrousConv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=bias)
    ref.build((None, None, None, channels))
    ours.build((None, None, None, channels))
    rng = np.random.default_rng(rate)
    weights = [rng.normal(size=v.shape).astype("float32") for v in ref.weights]
    ref.set_weights(weights)
    ours.set_weights(weights)
    return ref, ours


@pytest.mark.parametrize("kernel,rate,size", [(3, 2, (9, 7)), (3, 6, (8, 8)), (3, 18, (4, 4)), (3, 18, (16, 20)),
                                              (5, 3, (6, 11)), (3, (2, 5), (10, 9))])
def test_outputs_and_gradients_equal_keras_conv2d(kernel, rate, size):
    ref, ours = _pair(kernel, rate)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, *size, 5)).astype("float32"))
    for layer in (ref, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        layer.result = [y.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables])]]
    for a, b in zip(ref.result, ours.result):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_unknown_sizes_give_the_same_outputs_as_known_ones():
    ref, ours = _pair(3, 12)
    fn = tf.function(ours, input_signature=[tf.TensorSpec((None, None, None, 5), tf.float32)])
    for size in ((4, 4), (13, 30)):
        x = np.random.default_rng(1).normal(size=(1, *size, 5)).astype("float32")
        np.testing.assert_allclose(fn(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-4)


def test_saved_model_reloads_as_atrous(tmp_path):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, conv2d(2, 3, dilation_rate=6, padding="same", name="c")(inputs))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(again.get_layer("c")).__name__ == "AtrousConv2D"
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())


def test_only_same_padding_stride_one_is_taken():
    assert type(conv2d(2, 3, dilation_rate=1)).__name__ == "Conv2D"
    assert type(conv2d(2, 1, dilation_rate=2, padding="same")).__name__ == "Conv2D"
    assert type(conv2d(2, 3, dilation_rate=2, padding="valid")).__name__ == "Conv2D"
    assert type(conv2d(2, 3, dilation_rate=(1, 2), padding="same")).__name__ == "AtrousConv2D"
    with pytest.raises(ValueError, match="padding='same'"):
        AtrousConv2D(2, 3, dilation_rate=2, padding="valid")
