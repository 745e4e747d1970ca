"""Figures for runs and evaluations: learning curves, confusion matrices, prediction panels, LR finder.

Every figure is drawn on its own ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot
global state, so it works headless and from callbacks), at a fixed size so PNG dimensions are
predictable, and written through :func:`landseg.io_utils.atomic_path` so a reader never sees a
half-written file. The ``*_array`` variants return the same figure as a uint8 (H, W, 3) array
for TensorBoard image summaries.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from landseg.classmaps import ClassMap, get_classmap
from landseg.io_utils import atomic_path

DPI = 100
PANEL_INCHES = 3.0  # side of one image cell in plot_panels
LEGEND_INCHES = 0.6  # extra height for the class legend under the panels


# ---------------------------------------------------------------------- helpers
def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI)
    return path


def _to_array(fig: Figure) -> np.ndarray:
    canvas = fig.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ---------------------------------------------------------------------- learning curves
def _read_history(history: str | os.PathLike | Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    if isinstance(history, Mapping):
        data = {str(k): list(v) for k, v in history.items()}
    else:
        path = os.fspath(history)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: history file does not exist")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError(f"{path}: history CSV has no rows (expected Keras CSVLogger output)")
        data = {k: [r.get(k, "") for r in rows] for k in rows[0]}

    def num(v) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    return {k: np.asarray([num(v) for v in vals], np.float64) for k, vals in data.items()}


def _metric_key(keys: Sequence[str], metric: str | None) -> str | None:
    train_keys = [k for k in keys if not k.startswith("val_")]
    if metric is not None:
        return metric if metric in keys else None
    for k in ("mean_iou", "miou", "mIoU"):
        if k in train_keys:
            return k
    candidates = [k for k in train_keys if "mean_iou" in k.lower() or "miou" in k.lower()]
    return candidates[0] if candidates else None


def _learning_curves_figure(history, metric: str | None = None) -> Figure:
    data = _read_history(history)
    if "loss" not in data and "val_loss" not in data:
        raise ValueError(f"history has no 'loss' or 'val_loss' column; columns: {sorted(data)}")
    n = max(len(v) for v in data.values())
    if "epoch" in data and len(data["epoch"]) == n and np.isfinite(data["epoch"]).all():
        # Keras' CSVLogger counts epochs from 0, landseg's run history from 1: show 1-based numbers
        epochs = data["epoch"] + 1 if data["epoch"].min() == 0 else data["epoch"]
    else:
        epochs = np.arange(1, n + 1)
    mkey = _metric_key(list(data), metric)
    fig = _new_figure(11.0, 4.0)
    axes = fig.subplots(1, 2)
    panels = [("loss", "loss"), (mkey, "mean IoU" if mkey else "mean IoU (not in history)")]
    for ax, (key, label) in zip(axes, panels):
        if key is not None:
            for k, style, name in ((key, "-", "train"), ("val_" + key, "--", "validation")):
                if k in data and np.isfinite(data[k]).any():
                    ax.plot(epochs[: len(data[k])], data[k], style, marker="o", markersize=3, label=name)
                    if name == "validation" and key != "loss":
                        best = int(np.nanargmax(data[k]))
                        ax.annotate(f"best {data[k][best]:.3f}", (epochs[best], data[k][best]),
                                    textcoords="offset points", xytext=(0, 6), fontsize=8,
                                    ha="right" if best == len(data[k]) - 1 else "center")
            if ax.lines:
                ax.legend()
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
    return fig


def plot_learning_curves(history, path, metric: str | None = None) -> str:
    """Loss and mean IoU per epoch, train (solid) and validation (dashed).

    ``history`` is a CSV file (Keras CSVLogger's, epochs from 0, or a run's ``history.csv``, from 1)
    or a dict of lists (``History.history``); the x axis shows epochs counted from 1. The IoU
    column is ``metric`` or the first of ``mean_iou`` / ``miou`` found; its ``val_`` twin is
    drawn beside it with the best validation value marked.
    """
    return _save(_learning_curves_figure(history, metric), path)


# ---------------------------------------------------------------------- confusion matrix
def _confusion_figure(cm, class_names: Sequence[str], normalize: bool = True, title: str | None = None) -> Figure:
    cm = np.asarray(cm, np.float64)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(class_names)} class names")
    rows = cm.sum(axis=1)
    if normalize:
        shown = np.divide(cm, rows[:, None], out=np.zeros_like(cm), where=rows[:, None] > 0)
    else:
        shown = cm
    side = max(5.0, 1.0 + 0.8 * n)
    fig = _new_figure(side + 1.5, side)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "pixels")
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=[f"{name}\n(n={_short(r)})" for name, r in zip(class_names, rows)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (rows normalised)" if normalize else "confusion matrix (pixels)"))
    vmax = 1.0 if normalize else max(shown.max(), 1)
    fontsize = 9 if n <= 8 else 7 if n <= 14 else 5
    for i in range(n):
        for j in range(n):
            if normalize and rows[i] == 0:
                text = "–"
            elif normalize:
                text = f"{shown[i, j]:.2f}"
            else:
                text = _short(shown[i, j])
            colour = "white" if shown[i, j] > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    return fig


def _short(x: float) -> str:
    x = float(x)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def plot_confusion_matrix(cm, class_names: Sequence[str], path, normalize: bool = True, title: str | None = None) -> str:
    """Confusion matrix (rows = truth) as an annotated heat map; rows normalised to recall by default.

    Row labels carry each class's pixel count so a class that is absent from the truth
    (an all-dash row) is visible as such rather than as a row of zeros.
    """
    return _save(_confusion_figure(cm, class_names, normalize, title), path)


def confusion_matrix_array(cm, class_names: Sequence[str], normalize: bool = True, title: str | None = None) -> np.ndarray:
    """:func:`plot_confusion_matrix` as a uint8 (H, W, 3) array (for TensorBoard)."""
    return _to_array(_confusion_figure(cm, class_names, normalize, title))


# ---------------------------------------------------------------------- prediction panels
def _display_image(image) -> np.ndarray:
    """Any (H, W[, C]) image -> uint8 RGB for display: first three bands, greys for one or two."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"an image must be (H, W) or (H, W, C), got shape {a.shape}")
    a = a[..., :3] if a.shape[-1] >= 3 else np.repeat(a[..., :1], 3, axis=-1)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if np.nanmax(a, initial=0) <= 1.0:  # float model input in [0, 1]
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    return a


def _as_indices(mask, num_classes: int) -> np.ndarray | None:
    """Class indices (H, W) from indices, (H, W, 1), or per-class scores (H, W, C) (argmax)."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    elif m.ndim == 3 and m.shape[-1] == num_classes:
        m = np.argmax(m, axis=-1)
    if m.ndim != 2:
        raise ValueError(f"a mask must be (H, W) class indices or (H, W, {num_classes}) scores, got shape {m.shape}")
    return m.astype(np.int64)


def _panels_figure(images, targets, preds, classmap, titles=None) -> Figure:
    cmap: ClassMap = get_classmap(classmap)
    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("plot_panels needs at least one image")
    targets = [None] * n if targets is None else list(targets)
    preds = [None] * n if preds is None else list(preds)
    if len(targets) != n or len(preds) != n:
        raise ValueError(f"got {n} images, {len(targets)} targets and {len(preds)} predictions")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {n} images but {len(titles)} titles")
    fig = _new_figure(3 * PANEL_INCHES, n * PANEL_INCHES + LEGEND_INCHES)
    axes = np.asarray(fig.subplots(n, 3, squeeze=False))
    for i in range(n):
        cells = [
            ("image", _display_image(images[i])),
            ("target", targets[i]),
            ("prediction", preds[i]),
        ]
        for j, (name, content) in enumerate(cells):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j > 0:
                idx = _as_indices(content, cmap.num_classes)
                if idx is None:
                    ax.text(0.5, 0.5, f"no {name}", ha="center", va="center", transform=ax.transAxes)
                    content = None
                else:
                    content = cmap.encode_rgb(np.clip(idx, 0, 255))
            if content is not None:
                ax.imshow(content, interpolation="nearest")
            header = name if i == 0 else ""
            if j == 0 and titles is not None:
                header = f"{titles[i]}" if not header else f"{header}: {titles[i]}"
            if header:
                ax.set_title(header, fontsize=9)
    handles = [Patch(facecolor=np.asarray(c) / 255, edgecolor="black", label=name)
               for name, c in zip(cmap.class_names, cmap.palette)]
    handles.append(Patch(facecolor=np.asarray(cmap.ignore_color) / 255, edgecolor="black", label="no label"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    return fig


def plot_panels(images, targets, preds, classmap, path, titles=None) -> str:
    """Rows of image / target / prediction, masks in the class map's palette, with a legend.

    ``images``: (H, W, C) uint8 or float in [0, 1] (first three bands shown); ``targets`` and
    ``preds``: (H, W) class indices (255 = no label, drawn in the ignore colour) or (H, W, C)
    probabilities (argmax); either may be ``None`` (or hold ``None``) where there is none.
    ``classmap`` is a :class:`ClassMap` or its name. ``titles`` label each row.
    """
    return _save(_panels_figure(images, targets, preds, classmap, titles), path)


def panel_array(images, targets, preds, classmap, titles=None) -> np.ndarray:
    """:func:`plot_panels` as a uint8 (H, W, 3) array (for TensorBoard)."""
    return _to_array(_panels_figure(images, targets, preds, classmap, titles))


def panel_size(num_rows: int) -> tuple[int, int]:
    """(height, width) in pixels of :func:`plot_panels` / :func:`panel_array` for ``num_rows`` rows."""
    return (round((num_rows * PANEL_INCHES + LEGEND_INCHES) * DPI), round(3 * PANEL_INCHES * DPI))


# ---------------------------------------------------------------------- learning-rate finder
def _lr_finder_figure(lrs, losses, suggestion=None) -> Figure:
    lrs = np.asarray(lrs, np.float64)
    losses = np.asarray(losses, np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1 or len(lrs) == 0:
        raise ValueError(f"lrs and losses must be 1-D and of equal length, got {lrs.shape} and {losses.shape}")
    fig = _new_figure(7.0, 4.5)
    ax = fig.subplots()
    ax.plot(lrs, losses, "-", label="loss")
    ax.set_xscale("log")
    finite = losses[np.isfinite(losses)]
    if finite.size:  # keep a diverging tail from flattening the interesting part
        lo, start = finite.min(), finite[0]
        hi = start + 0.5 * (start - lo) if start > lo else np.percentile(finite, 95)
        hi = min(hi, finite.max())
        pad = 0.05 * max(hi - lo, 1e-12)
        ax.set_ylim(lo - pad, hi + pad)
    if suggestion is not None and np.isfinite(suggestion):
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2e}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title("learning-rate range test")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def plot_lr_finder(lrs, losses, suggestion, path) -> str:
    """Loss against learning rate (log x) from a range test, with the suggested rate marked."""
    return _save(_lr_finder_figure(lrs, losses, suggestion), path)


def learning_curves_size() -> tuple[int, int]:
    """(height, width) in pixels of :func:`plot_learning_curves` output."""
    return (round(4.0 * DPI), round(11.0 * DPI))


__all__ = [
    "plot_learning_curves",
    "plot_confusion_matrix",
    "confusion_matrix_array",
    "plot_panels",
    "panel_array",
    "panel_size",
    "plot_lr_finder",
    "learning_curves_size",
]
