"""CSE-UNet (Wang & Xie 2020) as docs/cse_unet.md reads it: dual-path encoder, RFB skip
pathways, bilinear decoder. 34,570,886 trainable parameters at width 64, 3 bands, 6 classes."""

from __future__ import annotations

import keras
from keras import layers

from ..common import InputSizeCheck, classification_head
from .layers import AUX_KERNELS, RFB_SPECS, ConvBN, ConvStack, DualPathFusion, UpConcat

SIZE_MULTIPLE = 16  # four 2x poolings


def build_cse_unet(num_classes: int, input_shape=(None, None, 3), base_width: int = 64,
                   dropout: float = 0.0, logits: bool = False, name: str = "cse_unet") -> keras.Model:
    """Build CSE-UNet; widths base_width * (1, 2, 4, 8), bridge 16x."""
    w = [base_width * 2 ** i for i in range(5)]
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = InputSizeCheck(SIZE_MULTIPLE, "cse_unet", name="input_size_check")(inputs)
    skips, aux = [], None
    for lvl in range(1, 5):
        e = ConvStack(w[lvl - 1], dropout=dropout, name=f"enc{lvl}")(x)
        skips.append(ConvStack(w[lvl - 1], RFB_SPECS[lvl], name=f"rfb{lvl}")(e))
        aux_in = e if lvl == 1 else layers.ReLU(name=f"aux{lvl}_relu")(aux)
        aux = ConvBN(w[lvl - 1], AUX_KERNELS[lvl], strides=2, activation=False, name=f"aux{lvl}")(aux_in)
        x = DualPathFusion(name=f"fuse{lvl}")([e, aux])
    x = ConvStack(w[4], dropout=dropout, name="bridge")(x)
    for lvl in range(4, 0, -1):
        x = UpConcat(w[lvl - 1], name=f"up{lvl}")([x, skips[lvl - 1]])
        x = ConvStack(w[lvl - 1], dropout=dropout, name=f"dec{lvl}")(x)
    outputs = classification_head(x, num_classes, logits)
    return keras.Model(inputs, outputs, name=name)
