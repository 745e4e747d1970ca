"""A two-conv network registered as ``tiny_test_net``: the training machinery (resume, NaN, outputs)
is tested on it because a real model's graph takes ~40 s to trace on 2 busy CPU cores."""

import keras

from landseg.models.registry import ModelSpec, _REGISTRY, register

NAME = "tiny_test_net"


def build_tiny(num_classes, input_shape, width=4, dropout=0.0, logits=False, freeze_encoder=False):
    inp = keras.Input(shape=tuple(input_shape), name="image")
    conv1 = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1")  # the "encoder"
    conv1.trainable = not freeze_encoder
    x = conv1(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    if dropout:
        x = keras.layers.SpatialDropout2D(dropout, name="drop")(x)
    out = keras.layers.Conv2D(num_classes, 1, activation=None if logits else "softmax", name="head")(x)
    return keras.Model(inp, out, name=NAME)


def register_tiny():
    """Add the test model to the registry (undo with :func:`unregister_tiny`, so other tests never see it)."""
    if NAME not in _REGISTRY:
        register(ModelSpec(NAME, build_tiny, 1, {"width": "conv width", "dropout": "dropout", "logits": "logits",
                                                 "freeze_encoder": "freeze conv1"}, doc="test-only"))


def unregister_tiny():
    _REGISTRY.pop(NAME, None)
