"""A dilated ('atrous') convolution that costs what an undilated one does, whatever the rate.

Why: TensorFlow's CPU kernels have no dilated convolution; ``Conv2D(dilation_rate=r)`` goes through
``space_to_batch``, which pads the map to multiples of ``r`` and convolves mostly zeros. ASPP's rate-18
3x3 branch on DeepLab's stride-16 map (16 x 16 for a 256² crop, 2048 channels) then took 1.1 s per
training step against 0.09 s undilated, and DeepLabv3-ResNet50 spent most of its step there.
Here each kernel tap is one matrix product of the shifted map, so a 3x3 costs nine products over the
map at any rate; taps that only ever see the zero padding (rate >= the map's side, known when the
shape is) are skipped. Same weights, same config and the same outputs as ``keras.layers.Conv2D``
(float rounding aside; ``tests/models/test_atrous.py``), and it exports to ONNX / TFLite as pad, slice
and matmul.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="landseg")
class AtrousConv2D(layers.Conv2D):
    """``Conv2D`` with ``padding='same'``, stride 1 and an odd kernel, computed tap by tap."""

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if (self.padding != "same" or tuple(self.strides) != (1, 1) or self.groups != 1
                or self.data_format != "channels_last" or any(k % 2 == 0 for k in self.kernel_size)):
            raise ValueError(f"{self.name}: AtrousConv2D takes padding='same', strides 1, groups 1, channels_last "
                             f"and odd kernel sizes, got {self.get_config()}")

    def convolution_op(self, inputs, kernel):
        (kh, kw), (rh, rw) = self.kernel_size, self.dilation_rate
        static_h, static_w = inputs.shape[1], inputs.shape[2]
        h, w = ops.shape(inputs)[1], ops.shape(inputs)[2]
        offsets_h = [(i - kh // 2) * rh for i in range(kh)]
        offsets_w = [(j - kw // 2) * rw for j in range(kw)]
        # taps outside the map on every output pixel contribute nothing: drop them when the size is known
        keep_h = [i for i, d in enumerate(offsets_h) if static_h is None or abs(d) < static_h]
        keep_w = [j for j, d in enumerate(offsets_w) if static_w is None or abs(d) < static_w]
        ph = max(abs(offsets_h[i]) for i in keep_h)
        pw = max(abs(offsets_w[j]) for j in keep_w)
        x = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]]) if ph or pw else inputs
        out = None
        for i in keep_h:
            for j in keep_w:
                top, left = ph + offsets_h[i], pw + offsets_w[j]
                tap = ops.matmul(x[:, top:top + h, left:left + w, :], kernel[i, j])
                out = tap if out is None else out + tap
        return out


def conv2d(filters, kernel_size, dilation_rate=1, strides=1, padding="valid", **kwargs):
    """``AtrousConv2D`` where a convolution is dilated and AtrousConv2D computes it (odd kernel wider than 1,
    stride 1, 'same' padding), ``Conv2D`` otherwise; the same arguments either way."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    tapwise = (max(pair(dilation_rate)) > 1 and max(pair(kernel_size)) > 1 and pair(strides) == (1, 1)
               and padding == "same")
    cls = AtrousConv2D if tapwise else layers.Conv2D
    return cls(filters, kernel_size, dilation_rate=dilation_rate, strides=strides, padding=padding, **kwargs)
