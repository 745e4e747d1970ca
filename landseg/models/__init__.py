"""landseg models: build any registered segmentation model by name, and load saved ones.

>>> from landseg.models import build_model, available_models
>>> model = build_model("cse_unet", num_classes=6, base_width=8)
"""

from __future__ import annotations

import os

# Importing the layer, loss and metric modules registers them, so plain keras.models.load_model
# works on a trained (compiled) model after `import landseg.models`.
from .. import losses as _losses, metrics as _metrics  # noqa: F401
from . import common, cse_unet, deeplabv3, segformer  # noqa: F401  (segformer registers MiTAttention)
from . import encoders  # noqa: F401  (registers FrozenStatsBatchNorm)
from .registry import ModelSpec, available_models, build_model, check_input_size, get_model_spec
from .weights import WeightsNotFoundError

__all__ = ["build_model", "available_models", "get_model_spec", "check_input_size", "load_model",
           "custom_objects", "ModelSpec", "WeightsNotFoundError"]


def custom_objects() -> dict:
    """Every landseg layer (they are also registered under the 'landseg>' package names)."""
    from .common import BilinearUpsample, FastBatchNorm, InputSizeCheck
    from .cse_unet import ConvBN, ConvStack, DualPathFusion, UpConcat
    from .deeplabv3 import ImagePooling
    from .encoders.layers import FrozenStatsBatchNorm
    from .segformer import MiTAttention, gelu_tanh

    objs = [InputSizeCheck, FastBatchNorm, FrozenStatsBatchNorm, BilinearUpsample, ConvBN, ConvStack, DualPathFusion, UpConcat,
            ImagePooling, MiTAttention, gelu_tanh]
    return {c.__name__: c for c in objs}


def load_model(path, compile: bool = False, **kwargs):
    """keras.models.load_model with landseg's layers registered and SM_FRAMEWORK=tf.keras set.

    ``compile=False`` by default: training compiles its own loss, prediction needs none. With
    ``compile=True`` landseg's losses and metrics are imported first so they deserialize. Always in Keras'
    ``safe_mode``: a file holding Python code (a ``Lambda`` layer's bytecode) is refused, never run.
    """
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    import keras

    if compile:
        import landseg.losses  # noqa: F401  registers the losses and metrics a compiled model names
        import landseg.metrics  # noqa: F401

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: model file not found")
    kwargs.pop("safe_mode", None)  # never lifted: models come from files users download
    return keras.models.load_model(path, custom_objects=custom_objects(), compile=compile, safe_mode=True, **kwargs)
