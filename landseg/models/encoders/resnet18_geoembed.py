"""geoembed's self-supervised aerial ResNet-18 (``geoembed/weights/v3.npz``) as a Keras encoder.

The architecture is ``geoembed.arch.NetCLResNet18`` (CIFAR/NAIP style): a 3x3 stride-1 stem without
max-pooling, then four stages of two BasicBlocks (64, 128, 256, 512 channels; the first block of
stages 2-4 has stride 2 and a 1x1 convolution + BatchNorm shortcut). The stem and the first stage run
at the encoder's full input resolution, so this encoder costs ~10x Lite0 per crop; its deepest
feature is at stride 8. ``input_downsample`` 2 or 4 brings it to Lite-like cost and strides (geoembed
itself feeds it 128x128 tiles). Its 3x3 stride-2 convolutions pad symmetrically by 1 (PyTorch), hence
``layers.torch_pad``. BatchNorm epsilon: 1e-5 (PyTorch's default; geoembed's code states parity with
its PyTorch checkpoints but netcl's default is not in the wheel). Input: ``preprocess256``'s
``(x / 255 - 0.5) / 0.5``, i.e. [-1, 1].
"""

from __future__ import annotations

from keras import layers

from .layers import LayerBook, torch_pad

WIDTHS = (64, 128, 256, 512)
BN_EPSILON = 1e-5
CHANNELS = {1: 64, 2: 128, 4: 256, 8: 512}


def geoembed_features(x, book: LayerBook, output_stride: int = 32) -> dict:
    """Run the stem and layer1-4 on ``x`` (already in [-1, 1]) -> {1: layer1, 2: layer2, 4: layer3, 8: layer4}.

    The deepest stride is 8, below any ``output_stride`` a decoder asks for, so nothing is dilated.
    """
    del output_stride
    x = book.conv("encoder_stem_conv", "bb.stem.0", WIDTHS[0], 3)(x)
    x = layers.ReLU(name="encoder_stem_relu")(book.bn("encoder_stem_bn", "bb.stem.1")(x))
    features, cin, stride = {}, WIDTHS[0], 1
    for stage, width in enumerate(WIDTHS, start=1):
        for b in range(2):
            s = 2 if stage > 1 and b == 0 else 1
            p, k, inputs = f"encoder_layer{stage}_{b}_", f"bb.layer{stage}.{b}.", x
            h, pad = torch_pad(x, 3, s, p + "pad")
            h = book.conv(p + "conv1", k + "conv1", width, 3, strides=s, padding=pad)(h)
            h = layers.ReLU(name=p + "relu1")(book.bn(p + "bn1", k + "bn1")(h))
            h = book.conv(p + "conv2", k + "conv2", width, 3)(h)
            h = book.bn(p + "bn2", k + "bn2")(h)
            if s != 1 or cin != width:
                inputs = book.conv(p + "short_conv", k + "short.0", width, 1, strides=s, padding="valid")(inputs)
                inputs = book.bn(p + "short_bn", k + "short.1")(inputs)
            x = layers.ReLU(name=p + "out")(layers.Add(name=p + "add")([h, inputs]))
            stride, cin = stride * s, width
        features[stride] = x
    return features
