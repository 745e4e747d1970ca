"""SegFormer (Xie et al. 2021): the MiT (Mix Transformer) encoder and the all-MLP decoder.

Why not keras-hub's ``MiTBackbone`` itself: in keras-hub 0.32 it needs a static square input
(its constructor divides the input height by the stride, so ``(None, None, 3)`` fails, and its
attention and Mix-FFN recover H and W as ``sqrt(tokens)``, so a 96x64 tile fails). landseg's
models take any multiple-of-32 size, so the same network is written here from Keras layers
that read H and W from the tensor. Its layers and weight shapes are keras-hub's one for one,
so a keras-hub MiT preset folder loads into it (``load_mit_preset``; checked weight by weight
and against keras-hub's own forward pass in tests/models/test_segformer.py). keras-hub is
needed only to read such a folder; random-init SegFormer needs nothing beyond Keras.

Numerics follow keras-hub's MiT, which the presets were converted for: tanh-approximate GELU
in the Mix-FFN (the original uses exact GELU; they differ by < 1e-3 per activation). Unlike
keras-hub, attention has no dropout (the original's setting; keras-hub hard-codes 0.1).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
from keras import layers, ops

from .common import BN_MOMENTUM, BilinearUpsample, FastBatchNorm, InputSizeCheck
from .encoders import IMAGENET_NORM

SIZE_MULTIPLE = 32  # patch embeddings of stride 4, 2, 2, 2

# Per MiT size: hidden dims and blocks of the four stages, as keras-hub's mit_b*_ade20k presets
# (converted from nvidia/segformer-b*). Every size shares heads, reduction ratios, patch sizes
# and strides; the decoder width is the paper's (256 for b0/b1, 768 for b2-b5).
MIT_SIZES = {
    "b0": ((32, 64, 160, 256), (2, 2, 2, 2)),
    "b1": ((64, 128, 320, 512), (2, 2, 2, 2)),
    "b2": ((64, 128, 320, 512), (3, 4, 6, 3)),
    "b3": ((64, 128, 320, 512), (3, 4, 18, 3)),
    "b4": ((64, 128, 320, 512), (3, 8, 27, 3)),
    "b5": ((64, 128, 320, 512), (3, 6, 40, 3)),
}
HEADS, SR_RATIOS, PATCH_SIZES, STRIDES = (1, 2, 5, 8), (8, 4, 2, 1), (7, 3, 3, 3), (4, 2, 2, 2)
DECODER_WIDTH = {"b0": 256, "b1": 256, "b2": 768, "b3": 768, "b4": 768, "b5": 768}
DROP_PATH_RATE = 0.1  # stochastic depth, rising linearly to this over the blocks (keras-hub presets, paper)

MAKE_PRESET = ("python -c \"import keras_hub; keras_hub.models.MiTBackbone.from_preset('mit_b0_ade20k_512')"
               ".save_to_preset('mit_b0')\"")


@keras.saving.register_keras_serializable(package="landseg")
def gelu_tanh(x):
    """GELU, tanh approximation (keras-hub's MiT Mix-FFN); a named function so it serializes."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="landseg")
class MiTAttention(layers.Layer):
    """SegFormer's efficient self-attention on a (B, H, W, C) map.

    Keys and values come from the map reduced by a strided ``sr_ratio`` x ``sr_ratio`` conv
    (sequence reduction), so a stride-4 map of N tokens costs N x N/64 instead of N x N.
    Sublayers ``q``, ``k``, ``v``, ``proj``, ``sr``, ``norm`` hold keras-hub's weights.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.sr_ratio = int(dim), int(num_heads), int(sr_ratio)
        self.q, self.k, self.v, self.proj = (layers.Dense(self.dim, name=n) for n in ("q", "k", "v", "proj"))
        if self.sr_ratio > 1:
            self.sr = layers.Conv2D(self.dim, self.sr_ratio, strides=self.sr_ratio, name="sr")
            self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm")

    def build(self, input_shape):
        kv_shape = input_shape
        if self.sr_ratio > 1:
            self.sr.build(input_shape)
            kv_shape = self.sr.compute_output_shape(input_shape)
            self.norm.build(kv_shape)
        self.q.build(input_shape)
        self.k.build(kv_shape)
        self.v.build(kv_shape)
        self.proj.build(input_shape)

    def call(self, x):
        shape = ops.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        head_dim = self.dim // self.num_heads

        def heads(t):  # (B, h, w, C) -> (B * heads, h*w, C/heads): 3-D matmuls, which every exporter handles
            t = ops.transpose(ops.reshape(t, (b, -1, self.num_heads, head_dim)), (0, 2, 1, 3))
            return ops.reshape(t, (b * self.num_heads, -1, head_dim))

        kv = self.norm(self.sr(x)) if self.sr_ratio > 1 else x
        q, k, v = heads(self.q(x)), heads(self.k(kv)), heads(self.v(kv))
        attn = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 2, 1))) * (head_dim ** -0.5), axis=-1)
        out = ops.reshape(ops.matmul(attn, v), (b, self.num_heads, h * w, head_dim))
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (b, h, w, self.dim))
        return self.proj(out)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "sr_ratio": self.sr_ratio}


def mit_encoder(x, size: str):
    """The four stage outputs (strides 4, 8, 16, 32) of MiT ``size`` on the normalised image ``x``."""
    dims, depths = MIT_SIZES[size]
    rates = np.linspace(0.0, DROP_PATH_RATE, sum(depths))
    feats, n = [], 0
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        p = f"encoder_patch{i}"
        x = layers.ZeroPadding2D(PATCH_SIZES[i] // 2, name=f"{p}_pad")(x)
        x = layers.Conv2D(dim, PATCH_SIZES[i], strides=STRIDES[i], name=f"{p}_conv")(x)
        x = layers.LayerNormalization(epsilon=1e-5, name=f"{p}_norm")(x)
        for k in range(depth):
            b, rate = f"encoder_block{i}_{k}", float(rates[n])
            n += 1
            y = layers.LayerNormalization(epsilon=1e-6, name=f"{b}_norm1")(x)
            y = MiTAttention(dim, HEADS[i], SR_RATIOS[i], name=f"{b}_attn")(y)
            if rate:  # drop path: per-sample dropout of the whole residual branch
                y = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{b}_drop1")(y)
            x = layers.Add(name=f"{b}_add1")([x, y])
            y = layers.LayerNormalization(epsilon=1e-6, name=f"{b}_norm2")(x)
            y = layers.Dense(4 * dim, name=f"{b}_fc1")(y)
            y = layers.DepthwiseConv2D(3, padding="same", name=f"{b}_dwconv")(y)
            y = layers.Activation(gelu_tanh, name=f"{b}_gelu")(y)
            y = layers.Dense(dim, name=f"{b}_fc2")(y)
            if rate:
                y = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{b}_drop2")(y)
            x = layers.Add(name=f"{b}_add2")([x, y])
        x = layers.LayerNormalization(epsilon=1e-5, name=f"encoder_stage{i}_norm")(x)
        feats.append(x)
    return feats


def build_segformer(num_classes: int, input_shape=(None, None, 3), size: str = "b0", encoder_weights=None,
                    decoder_width=None, dropout: float = 0.1, freeze_encoder: bool = False,
                    logits: bool = False) -> keras.Model:
    """SegFormer-``size``; ``encoder_weights``: None or a keras-hub MiT preset folder."""
    if size not in MIT_SIZES:
        raise ValueError(f"segformer size {size!r} is not one of {sorted(MIT_SIZES)}")
    width = int(decoder_width or DECODER_WIDTH[size])
    bands = int(input_shape[-1])
    preset = None if encoder_weights is None else check_preset_folder(encoder_weights, size)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(SIZE_MULTIPLE, "segformer", name="input_size_check")(inputs)
    x = IMAGENET_NORM.layer(bands)(x)
    feats = mit_encoder(x, size)
    # All-MLP decoder: each stage projected to one width, upsampled to stride 4, fused by a 1x1 conv.
    proj = []
    for i, f in enumerate(feats):
        y = layers.Dense(width, name=f"decoder_linear{i}")(f)
        proj.append(BilinearUpsample(2 ** i, name=f"decoder_up{i}")(y) if i else y)
    x = layers.Concatenate(name="decoder_concat")(proj[::-1])
    x = layers.Conv2D(width, 1, use_bias=False, name="decoder_fuse_conv")(x)
    x = FastBatchNorm(momentum=BN_MOMENTUM, epsilon=1e-5, name="decoder_fuse_bn")(x)
    x = layers.ReLU(name="decoder_fuse_relu")(x)
    if dropout:
        x = layers.SpatialDropout2D(dropout, name="decoder_dropout")(x)
    x = BilinearUpsample(4, name="head_upsample")(layers.Conv2D(num_classes, 1, name="head_conv")(x))
    outputs = layers.Activation("linear" if logits else "softmax", dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name=f"segformer_{size}")
    if preset is not None:
        load_mit_preset(model, preset, size)
    if freeze_encoder:
        for layer in model.layers:
            if layer.name.startswith("encoder_"):
                layer.trainable = False
    return model


# ---- keras-hub MiT preset folders --------------------------------------------------------------

def check_preset_folder(path, size: str) -> str:
    """``path`` if it is a saved keras-hub MiTBackbone preset of MiT ``size``, else a clear error."""
    from .weights import WeightsNotFoundError

    path = os.fspath(path)
    config_file = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise WeightsNotFoundError(
            f"{path}: not a folder. segformer's encoder_weights takes None (random init) or the folder of a saved "
            f"keras-hub MiT preset; landseg never downloads presets. On a machine with internet make one with\n"
            f"  {MAKE_PRESET}\nand pass encoder_weights='mit_b0' (the folder; b1..b5 likewise)")
    if not os.path.isfile(config_file):
        raise WeightsNotFoundError(f"{config_file}: not found; {path} is not a keras-hub preset folder "
                                   f"(make one with: {MAKE_PRESET})")
    with open(config_file) as f:
        saved = json.load(f)
    if saved.get("class_name") != "MiTBackbone":
        raise ValueError(f"{config_file}: holds a {saved.get('class_name')!r} preset; segformer's encoder_weights "
                         f"needs a MiTBackbone preset (make one with: {MAKE_PRESET})")
    cfg = saved.get("config", {})
    found = (tuple(cfg.get("hidden_dims") or ()), tuple(cfg.get("layerwise_depths") or ()))
    if found != MIT_SIZES[size] or tuple(cfg.get("layerwise_num_heads") or ()) != HEADS \
            or tuple(cfg.get("layerwise_sr_ratios") or ()) != SR_RATIOS \
            or tuple(cfg.get("layerwise_patch_sizes") or ()) != PATCH_SIZES \
            or tuple(cfg.get("layerwise_strides") or ()) != STRIDES:
        match = [s for s, v in MIT_SIZES.items() if v == found]
        hint = f"pass size={match[0]!r}" if match else "it is not one of MiT b0..b5"
        raise ValueError(f"{config_file}: MiT with hidden dims {list(found[0])} and depths {list(found[1])} does not "
                         f"fit segformer size {size!r} ({list(MIT_SIZES[size][0])}, {list(MIT_SIZES[size][1])}); {hint}")
    return path


def _layer_pairs(model: keras.Model, hub, depths) -> list[tuple]:
    """(landseg layer, keras-hub layer) for every weight-holding layer of the MiT encoder."""
    pairs = []
    for i, depth in enumerate(depths):
        patch = hub.get_layer(f"patch_and_embed_{i}")
        pairs += [(model.get_layer(f"encoder_patch{i}_conv"), patch.proj),
                  (model.get_layer(f"encoder_patch{i}_norm"), patch.norm)]
        for k in range(depth):
            blk, b = hub.get_layer(f"hierarchical_encoder_{i}_{k}"), f"encoder_block{i}_{k}"
            ours = model.get_layer(f"{b}_attn")
            subs = ("q", "k", "v", "proj") + (("sr", "norm") if ours.sr_ratio > 1 else ())
            pairs += [(getattr(ours, s), getattr(blk.attn, s)) for s in subs]
            pairs += [(model.get_layer(f"{b}_{n}"), src) for n, src in (
                ("norm1", blk.norm1), ("norm2", blk.norm2), ("fc1", blk.mlp.fc1), ("dwconv", blk.mlp.dwconv),
                ("fc2", blk.mlp.fc2))]
        reshape = hub.get_layer(f"output_level_{i}")  # the stage's LayerNorm is the layer feeding it
        pairs.append((model.get_layer(f"encoder_stage{i}_norm"),
                      reshape._inbound_nodes[0].input_tensors[0]._keras_history.operation))
    return pairs


def load_mit_preset(model: keras.Model, path: str, size: str) -> int:
    """Copy the MiT weights of keras-hub preset folder ``path`` into ``model``'s encoder.

    The first conv's RGB filters are adapted to the model's band count as for the other
    encoders (``weights.adapt_band_axis``). Returns the number of weight arrays copied.
    """
    from .encoders import PretrainedPackageMissing
    from .weights import adapt_band_axis

    try:
        import keras_hub
    except ImportError as e:
        raise PretrainedPackageMissing(
            f"reading the MiT preset {path} needs keras-hub: pip install -e \".[segformer]\" && "
            f"pip install --no-deps \"keras-hub==0.32.*\" (--no-deps: keras-hub's declared tensorflow-text would pin "
            f"TensorFlow; reading a preset does not use it)") from e
    side = 2 * SIZE_MULTIPLE  # any square multiple of 32: keras-hub's MiT needs a static square input
    hub = keras_hub.models.MiTBackbone.from_preset(path, image_shape=(side, side, 3))
    bands = int(model.input_shape[-1])
    try:
        pairs = _layer_pairs(model, hub, MIT_SIZES[size][1])
    except (AttributeError, ValueError) as e:  # keras-hub renamed its MiT internals
        raise RuntimeError(f"{path}: keras-hub {keras_hub.__version__}'s MiTBackbone is laid out differently from "
                           f"keras-hub 0.32's, which landseg reads ({e}); install keras-hub 0.32") from None
    n = 0
    for ours, src in pairs:
        values = src.get_weights()
        if ours.name == "encoder_patch0_conv" and bands != 3:
            values = [adapt_band_axis(values[0], bands, axis=2, scale=True), values[1]]
        ours.set_weights(values)
        n += len(values)
    return n
