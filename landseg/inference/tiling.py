"""Tiling and blending: a scene is cut into overlapping tiles whose probabilities are weighted by a
smooth window (see :mod:`landseg.inference`) so tile borders never show as seams."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 0.25
DEFAULT_BATCH = 4
WINDOWS = ("hann", "uniform")


# ----------------------------------------------------------------------------- tiling
def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def tile_positions(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts covering ``[0, length)`` with stride ``stride``; the last tile ends at ``length``."""
    if length <= tile:
        return [0]
    n = int(math.ceil((length - tile) / stride)) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


def ramp(overlap: int, margin: int) -> np.ndarray:
    """Rising weights over ``overlap`` pixels: 0 for the first ``margin``, then sin^2 up to 1.

    ``ramp(o, m) + ramp(o, m)[::-1] == 1``, so two neighbours' ramps blend to a constant.
    """
    if overlap <= 0:
        return np.ones(0, np.float32)
    width = max(overlap - 2 * margin, 1)
    t = np.clip((np.arange(overlap) + 0.5 - margin) / width, 0.0, 1.0)
    return (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)


def window_1d(tile: int, overlap: int, has_prev: bool, has_next: bool, window: str = "hann", margin: int | None = None) -> np.ndarray:
    """Weights along one axis of a tile; tapered only towards neighbouring tiles."""
    w = np.ones(tile, np.float32)
    if window == "uniform" or overlap <= 0:
        return w
    if window != "hann":
        raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS}")
    overlap = min(overlap, tile)
    if margin is None:
        margin = overlap // 4
    r = ramp(overlap, margin)
    if has_prev:
        w[:overlap] *= r
    if has_next:
        w[tile - overlap :] *= r[::-1]
    return w


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one (padded) scene lie."""

    height: int  # original scene size
    width: int
    padded_height: int
    padded_width: int
    tile_h: int
    tile_w: int
    stride_h: int
    stride_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def num_tiles(self) -> int:
        return len(self.ys) * len(self.xs)

    def tiles(self):
        """(y, x) starts in row-major order (the order the streaming blend relies on)."""
        for y in self.ys:
            for x in self.xs:
                yield y, x


def make_grid(height: int, width: int, tile: int = DEFAULT_TILE, overlap: float = DEFAULT_OVERLAP,
              size_multiple: int = 1) -> TileGrid:
    """Lay out tiles of ``tile`` px (rounded up to ``size_multiple``) with fractional ``overlap``.

    A scene smaller than a tile along an axis gets one tile of the scene's size rounded up
    to ``size_multiple``; the difference is filled by reflection (see :func:`pad_image`).
    """
    if height < 1 or width < 1:
        raise ValueError(f"empty scene of size {height}x{width}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    size_multiple = max(int(size_multiple), 1)
    tile = round_up(max(int(tile), 1), size_multiple)
    tile_h = min(tile, round_up(height, size_multiple))
    tile_w = min(tile, round_up(width, size_multiple))
    ph, pw = max(height, tile_h), max(width, tile_w)
    stride = max(int(round(tile * (1.0 - overlap))), 1)
    return TileGrid(
        height, width, ph, pw, tile_h, tile_w, min(stride, tile_h), min(stride, tile_w),
        tuple(tile_positions(ph, tile_h, stride)), tuple(tile_positions(pw, tile_w, stride)),
    )


def pad_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad an HxWxC image at the bottom/right to at least ``height`` x ``width``."""
    dh, dw = height - image.shape[0], width - image.shape[1]
    if dh <= 0 and dw <= 0:
        return image
    pads = ((0, max(dh, 0)), (0, max(dw, 0))) + ((0, 0),) * (image.ndim - 2)
    # 'reflect' needs at least 2 pixels along an axis; 'symmetric' repeats a single one.
    mode = "reflect" if min(image.shape[:2]) > 1 else "symmetric"
    return np.pad(image, pads, mode=mode)


class ReflectPadded:
    """The scene reflect-padded like :func:`pad_image`, without the padded copy: slicing
    ``[y0:y1, x0:x1]`` returns the same pixels as slicing ``pad_image(image, height, width)``;
    tiles inside the scene are views, tiles over the edge are gathered through reflected indices.
    Saves a full copy of the scene (3 bytes/px for RGB) while it is predicted."""

    def __init__(self, image: np.ndarray, height: int, width: int):
        self.image = image
        H, W = image.shape[:2]
        mode = "reflect" if min(H, W) > 1 else "symmetric"
        self.rows = np.pad(np.arange(H), (0, max(height - H, 0)), mode=mode)
        self.cols = np.pad(np.arange(W), (0, max(width - W, 0)), mode=mode)
        self.shape = (len(self.rows), len(self.cols)) + tuple(image.shape[2:])

    def __getitem__(self, key):
        ys, xs = key
        H, W = self.image.shape[:2]
        ys_ = range(*ys.indices(self.shape[0]))
        xs_ = range(*xs.indices(self.shape[1]))
        if ys_.step == 1 and xs_.step == 1 and ys_.stop <= H and xs_.stop <= W:
            return self.image[ys, xs]
        return self.image[np.ix_(self.rows[ys], self.cols[xs])]
