"""Test-time augmentation: the dihedral group D4 (flips and 90-degree rotations); each prediction
is mapped back by the exact inverse before averaging."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- TTA
@dataclass(frozen=True)
class Transform:
    """One element of D4: flip the width axis (optional), then rotate by ``k`` quarter turns."""

    k: int = 0
    flip: bool = False

    @property
    def name(self) -> str:
        return ("flip+" if self.flip else "") + f"rot{90 * self.k}"

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(B, H, W, C) -> transformed batch."""
        if self.flip:
            batch = batch[:, :, ::-1]
        if self.k:
            batch = np.rot90(batch, self.k, axes=(1, 2))
        return np.ascontiguousarray(batch)

    def inverse(self, batch: np.ndarray) -> np.ndarray:
        """Undo :meth:`forward` exactly (rotate back, then flip back)."""
        if self.k:
            batch = np.rot90(batch, -self.k, axes=(1, 2))
        if self.flip:
            batch = batch[:, :, ::-1]
        return batch


IDENTITY = Transform()
TTA_MODES = {
    "none": (IDENTITY,),
    # identity, horizontal flip, vertical flip (= rot180 of the hflip), rot180
    "flips": (IDENTITY, Transform(0, True), Transform(2, True), Transform(2, False)),
    "d4": tuple(Transform(k, f) for f in (False, True) for k in range(4)),
}


def get_tta(tta) -> tuple[Transform, ...]:
    """``None``/``False`` -> identity only; ``True`` -> all 8 of D4; a mode name; or a list of Transforms."""
    if tta is None or tta is False:
        return TTA_MODES["none"]
    if tta is True:
        return TTA_MODES["d4"]
    if isinstance(tta, str):
        if tta not in TTA_MODES:
            raise ValueError(f"unknown TTA mode {tta!r}; choose one of {sorted(TTA_MODES)}")
        return TTA_MODES[tta]
    transforms = tuple(tta)
    if not transforms or not all(isinstance(t, Transform) for t in transforms):
        raise ValueError("tta must be None, a bool, a mode name or a non-empty list of Transform")
    return transforms
