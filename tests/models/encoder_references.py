"""Numpy forward passes of the pretrained encoders, written from their sources' architectures and read
only from the weight files: the independent references the Keras encoders are checked against.

Inputs are NHWC float64 in [0, 1]; each returns {stride: feature map}. Nothing here imports landseg's
encoder code: block counts, widths and kernel sizes come from the state-dict shapes, strides and
paddings from the sources (TensorFlow's EfficientNet-Lite, torchvision's MobileNetV2, geoembed's
``arch.py``).
"""

import numpy as np


def _pad(x, k, s, pad):
    """``pad`` "same": TensorFlow's (extra pixel bottom/right); an int: PyTorch's symmetric padding."""
    if pad == "same":
        h = x.shape[1]
        total = max((-(-h // s) - 1) * s + k - h, 0)
        lo, hi = total // 2, total - total // 2
    else:
        lo = hi = pad
    return np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))


def conv(x, w, s=1, pad="same"):
    """Dense conv, torch weight (O, I, kh, kw), NHWC input."""
    k = w.shape[-1]
    x = _pad(x, k, s, pad)
    n, h, wd, _ = x.shape
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    out = np.zeros((n, ho, wo, w.shape[0]))
    for i in range(k):
        for j in range(k):
            out += x[:, i:i + s * ho:s, j:j + s * wo:s, :] @ w[:, :, i, j].T
    return out


def depthwise(x, w, s=1, pad="same"):
    k = w.shape[-1]
    x = _pad(x, k, s, pad)
    n, h, wd, c = x.shape
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    out = np.zeros((n, ho, wo, c))
    for i in range(k):
        for j in range(k):
            out += x[:, i:i + s * ho:s, j:j + s * wo:s, :] * w[:, 0, i, j]
    return out


def bn(x, sd, p, eps):
    return (x - sd[p + ".running_mean"]) / np.sqrt(sd[p + ".running_var"] + eps) * sd[p + ".weight"] + sd[p + ".bias"]


def relu6(v):
    return np.clip(v, 0, 6)


def lite(sd, x01):
    """EfficientNet-Lite0/1/2 (the lukemelas-style state dict, TF "same" padding, BN eps 1e-3).

    A block whose output width differs from its input starts a stage; TensorFlow's B0 stages have
    strides 1, 2, 2, 2, 1, 2, 1, and the features are the ends of stages 1, 2, 3, 5 and 7.
    """
    sd = {k: v.astype("float64") for k, v in sd.items()}
    x = (x01 * 255 - 127) / 128
    x = relu6(bn(conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0", 1e-3))
    stage_strides, stage_ends, stage, b = (1, 2, 2, 2, 1, 2, 1), {}, -1, 0
    while f"_blocks.{b}._project_conv.weight" in sd:
        p, inp = f"_blocks.{b}.", x
        cin, cout = x.shape[-1], sd[p + "_project_conv.weight"].shape[0]
        first = cin != cout or b == 0
        stage += first
        if p + "_expand_conv.weight" in sd:
            x = relu6(bn(conv(x, sd[p + "_expand_conv.weight"]), sd, p + "_bn0", 1e-3))
        x = relu6(bn(depthwise(x, sd[p + "_depthwise_conv.weight"], stage_strides[stage] if first else 1), sd,
                     p + "_bn1", 1e-3))
        x = bn(conv(x, sd[p + "_project_conv.weight"]), sd, p + "_bn2", 1e-3)
        if not first:
            x = x + inp
        stage_ends[stage] = x
        b += 1
    assert stage == 6, stage
    return {2: stage_ends[0], 4: stage_ends[1], 8: stage_ends[2], 16: stage_ends[4], 32: stage_ends[6]}


def mobilenet_v2(sd, x01):
    """torchvision's MobileNetV2: symmetric padding 1, ReLU6, BN eps 1e-5; stride 2 at features 2, 4, 7, 14."""
    sd = {k: v.astype("float64") for k, v in sd.items()}
    x = (x01 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    x = relu6(bn(conv(x, sd["features.0.0.weight"], 2, pad=1), sd, "features.0.1", 1e-5))
    feats = {}
    for i in range(1, 18):
        p, inp, s = f"features.{i}.conv.", x, 2 if i in (2, 4, 7, 14) else 1
        j = 0
        if sd[p + "0.0.weight"].shape[1] != 1:  # expand 1x1 (features.1 has none)
            x = relu6(bn(conv(x, sd[p + "0.0.weight"]), sd, p + "0.1", 1e-5))
            j = 1
        x = relu6(bn(depthwise(x, sd[f"{p}{j}.0.weight"], s, pad=1), sd, f"{p}{j}.1", 1e-5))
        x = bn(conv(x, sd[f"{p}{j + 1}.weight"]), sd, f"{p}{j + 2}", 1e-5)
        if s == 1 and x.shape == inp.shape:
            x = x + inp
        feats[i] = x
    return {2: feats[1], 4: feats[3], 8: feats[6], 16: feats[13], 32: feats[17]}


def geoembed_resnet18(sd, x01):
    """geoembed ``arch.NetCLResNet18`` with ``preprocess256``'s [-1, 1] input; BN eps 1e-5 (PyTorch's)."""
    sd = {k: v.astype("float64") for k, v in sd.items() if k.startswith("bb.")}
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x = (x01 - 0.5) / 0.5
    x = relu(bn(conv(x, sd["bb.stem.0.weight"], 1, pad=1), sd, "bb.stem.1", 1e-5))
    feats = {}
    for stage, stride in ((1, 1), (2, 2), (3, 4), (4, 8)):
        for b in range(2):
            p, s = f"bb.layer{stage}.{b}.", 2 if stage > 1 and b == 0 else 1
            h = relu(bn(conv(x, sd[p + "conv1.weight"], s, pad=1), sd, p + "bn1", 1e-5))
            h = bn(conv(h, sd[p + "conv2.weight"], 1, pad=1), sd, p + "bn2", 1e-5)
            res = bn(conv(x, sd[p + "short.0.weight"], s, pad=0), sd, p + "short.1", 1e-5) if p + "short.0.weight" in sd else x
            x = relu(h + res)
        feats[stride] = x
    return feats
