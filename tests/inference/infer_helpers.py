"""Tiny Keras models for inference tests (built here, independent of landseg.models)."""

import numpy as np


def conv_model(num_classes=4, layers=3, seed=0, bands=3):
    """Fully convolutional, no downsampling; receptive-field radius = ``layers`` pixels."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, bands))
    x = inp
    for _ in range(layers - 1):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", bias_initializer="random_normal")(x)
    x = keras.layers.Conv2D(num_classes, 3, padding="same", bias_initializer="random_normal")(x)
    out = keras.layers.Softmax()(x * 3.0)
    return keras.Model(inp, out)


def pointwise_model(num_classes=4, seed=0, bands=3):
    """Per-pixel (1x1) model: exactly equivariant to flips/rotations, so TTA must change nothing."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, bands))
    x = keras.layers.Conv2D(num_classes, 1, bias_initializer="random_normal")(inp)
    out = keras.layers.Softmax()(x * 5.0)
    return keras.Model(inp, out)


def pooled_model(num_classes=3, seed=0, bands=3):
    """Down/up-sampling by 4: inputs must be multiples of 4 (like a U-Net's 32)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, bands))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.UpSampling2D(4)(x)
    x = keras.layers.Conv2D(num_classes, 3, padding="same")(x)
    return keras.Model(inp, keras.layers.Softmax()(x))


def random_image(h, w, seed=0, bands=3):
    rng = np.random.default_rng(seed)
    # smooth-ish structure plus noise so predictions are not constant
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(yy / 7.0 + c) * np.cos(xx / 11.0 - c) for c in range(bands)], -1)
    img = (base * 80 + 128 + rng.normal(0, 30, (h, w, bands))).clip(0, 255)
    return img.astype(np.uint8)


def whole_probs(model, image):
    """Reference: the model on the whole image at once, input = image / 255."""
    x = image[None].astype(np.float32) / 255.0
    return np.asarray(model(x, training=False))[0]
