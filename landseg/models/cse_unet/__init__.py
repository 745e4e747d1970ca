"""CSE-UNet: context and semantic enhanced UNet (see docs/cse_unet.md)."""

from .layers import ConvBN, ConvStack, DualPathFusion, UpConcat
from .model import SIZE_MULTIPLE, build_cse_unet

__all__ = ["build_cse_unet", "SIZE_MULTIPLE", "ConvBN", "ConvStack", "DualPathFusion", "UpConcat"]
