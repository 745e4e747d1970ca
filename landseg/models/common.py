"""Small layers every landseg model shares: an input-size guard (a clear error instead of a
shape mismatch deep in the decoder), a fused BatchNorm and the float32 output head."""

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


# A model landseg did not build states no size multiple; 32 is that of the common encoder-decoders
# (five stride-2 stages), so their tiles are cut to it.
FOREIGN_MODEL_MULTIPLE = 32


def size_multiple_of(model, recorded: int | None = None) -> int:
    """The input size multiple a model states in its :class:`InputSizeCheck` (nested models included):
    the model owns the fact; tiling and export read it here. A model landseg did not build states none:
    then the multiple ``recorded`` with it (its run artifact), else ``FOREIGN_MODEL_MULTIPLE``."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, InputSizeCheck):
            return layer.multiple
    return int(recorded) if recorded else FOREIGN_MODEL_MULTIPLE


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


# PyTorch's default (its 0.1 = 1 - 0.9). Keras' 0.99 averages over ~100 steps, so on short CPU runs
# the moving statistics lag the weights and validation scores trail training for epochs.
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="landseg")
class FastBatchNorm(layers.BatchNormalization):
    """keras BatchNormalization that runs TF's fused kernel on the TensorFlow backend.

    Keras 3 computes BN moments and the normalisation as separate elementwise ops; on CPU
    their forward+backward cost about 4x TF's FusedBatchNormV3 (504 vs 120 ms on a
    2x256x256x64 tensor, where a 3x3 conv takes ~1 s), which made BN ~40% of CSE-UNet's
    training step. Same weights, config and numbers as keras BatchNormalization (moving
    variance uses the biased batch variance, as Keras does; ``scale=False`` / ``center=False``
    feed the fused op ones / zeros). Other backends, masks, renorm and synchronized BN use the
    Keras implementation.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        channels = tf.shape(x)[-1:]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones(channels, tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros(channels, tf.float32)
        if training and self.trainable:
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon, is_training=True)
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            var = var * (n - 1.0) / tf.maximum(n, 1.0)  # the fused op returns the Bessel-corrected variance
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype) * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + tf.cast(var, self.moving_variance.dtype) * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, tf.cast(self.moving_mean, tf.float32), tf.cast(self.moving_variance, tf.float32),
                epsilon=self.epsilon, is_training=False)
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="landseg")
class BilinearUpsample(layers.Layer):
    """x ``factor`` bilinear upsampling that also works when H and W are unknown at trace time.

    Keras' ``UpSampling2D(interpolation="bilinear")`` fails once ``predict`` retraces with
    relaxed (None) spatial shapes, as it does for scenes of several sizes. Same numbers as
    ``keras.ops.image.resize`` (half-pixel centres, no antialiasing).
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        if isinstance(h, int) and isinstance(w, int):
            return keras.ops.image.resize(x, (h * self.factor, w * self.factor), interpolation="bilinear")
        import tensorflow as tf  # dynamic sizes: only the TensorFlow backend retraces with None dims

        size = tf.shape(x)[1:3] * self.factor
        return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h * self.factor, None if w is None else w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
