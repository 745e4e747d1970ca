"""Small layers every landseg model shares: an input-size guard (a clear error instead of a
shape mismatch deep in the decoder) and the float32 output head."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="landseg")
class InputSizeCheck(layers.Layer):
    """Identity that rejects spatial sizes not divisible by ``multiple``.

    Shapes are static when Keras traces a batch, so the error names the offending size at
    the first call; with unknown (symbolic) sizes it passes through.
    """

    def __init__(self, multiple: int, model_name: str = "model", **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.model_name = model_name

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        bad = [s for s in (h, w) if isinstance(s, int) and s % self.multiple]
        if bad:
            raise ValueError(size_error_message(self.model_name, h, w, self.multiple))
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "model_name": self.model_name}


def size_error_message(name: str, h, w, multiple: int) -> str:
    def nearest(s):
        return max(multiple, round(s / multiple) * multiple) if isinstance(s, int) else s

    return (f"model {name!r} needs input height and width divisible by {multiple}; got {h}x{w}. "
            f"Crop or pad the input, e.g. to {nearest(h)}x{nearest(w)}.")


def classification_head(x, num_classes: int, logits: bool, name: str = "head"):
    """Conv1x1 to classes, then softmax unless ``logits``; float32 even under mixed precision."""
    x = layers.Conv2D(num_classes, 1, name=f"{name}_conv")(x)
    act = "linear" if logits else "softmax"
    return layers.Activation(act, dtype="float32", name=f"{name}_{'logits' if logits else 'softmax'}")(x)
