"""Segmentation metrics from a confusion matrix: per-class truth, not just one number.

Everything is derived from one confusion matrix (rows = truth, columns = prediction) over
labelled pixels only. Two forms:

* numpy functions (:func:`confusion_matrix`, :func:`iou_per_class`, :func:`mean_iou`, ...)
  for evaluation reports;
* streaming Keras metrics (:class:`ConfusionMatrixMetric`, :class:`ClassIoU`) written with
  ``keras.ops``, whose state is summed across replicas (``aggregation="sum"``), so they are
  correct under ``tf.distribute`` strategies.

A class absent from both target and prediction has no IoU (0/0). How :func:`mean_iou`
treats it is an explicit, named policy (:data:`ABSENT_POLICIES`); the default ``"exclude"``
is the report's "valid mean IoU".
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import keras
import numpy as np
from keras import ops

from landseg.classmaps import IGNORE_INDEX

ABSENT_POLICIES = {
    "exclude": "classes absent from both target and prediction are left out of the mean (valid mean IoU)",
    "zero": "classes absent from both target and prediction count as IoU 0",
    "one": "classes absent from both target and prediction count as IoU 1",
}


def _check_policy(absent: str) -> str:
    if absent not in ABSENT_POLICIES:
        raise ValueError(f"unknown absent-class policy {absent!r}; choose one of: "
                         + "; ".join(f"{k!r} ({v})" for k, v in ABSENT_POLICIES.items()))
    return absent


# ---------------------------------------------------------------------- numpy functions
def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """(C, C) int64 pixel counts, rows = truth, columns = prediction, labelled pixels only.

    ``y_true``: integer class indices, any shape; pixels equal to ``ignore_index`` are left
    out. ``y_pred``: integer indices of the same size, or per-class scores with one extra
    trailing axis of length C (argmax is taken). Other truth values, or predictions outside
    ``0..C-1``, raise ``ValueError`` naming them.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == t.ndim + 1 and p.shape[-1] == num_classes:
        p = p.argmax(axis=-1)
    if t.size != p.size:
        raise ValueError(f"y_true has {t.size} pixels (shape {t.shape}) but y_pred has {p.size} (shape {p.shape})")
    t = t.reshape(-1).astype(np.int64)
    p = p.reshape(-1).astype(np.int64)
    keep = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    t, p = t[keep], p[keep]
    for what, v in (("y_true", t), ("y_pred", p)):
        bad = (v < 0) | (v >= num_classes)
        if bad.any():
            values = np.unique(v[bad])
            extra = f" (ignore_index is {ignore_index})" if what == "y_true" else ""
            raise ValueError(f"{what} holds values outside 0..{num_classes - 1}{extra}: {values[:10].tolist()}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _stats(cm):
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square (C, C), got shape {cm.shape}")
    tp = np.diag(cm)
    return cm, tp, cm.sum(axis=1), cm.sum(axis=0)


def iou_per_class(cm) -> np.ndarray:
    """tp / (tp + fp + fn) per class; NaN for a class absent from both target and prediction."""
    _, tp, true, pred = _stats(cm)
    union = true + pred - tp
    return np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)


def f1_per_class(cm) -> np.ndarray:
    """F1 / Dice 2tp / (2tp + fp + fn) per class; NaN for a class absent from both."""
    _, tp, true, pred = _stats(cm)
    denom = true + pred
    return np.divide(2 * tp, denom, out=np.full_like(tp, np.nan), where=denom > 0)


def _policy_mean(values: np.ndarray, absent: str) -> float:
    _check_policy(absent)
    missing = np.isnan(values)
    if absent == "exclude":
        return float(values[~missing].mean()) if (~missing).any() else math.nan
    return float(np.where(missing, 0.0 if absent == "zero" else 1.0, values).mean())


def mean_iou(cm, absent: str = "exclude") -> float:
    """Mean of :func:`iou_per_class` under a named policy for absent classes (:data:`ABSENT_POLICIES`).

    ``"exclude"`` (default) equals scikit-learn's ``jaccard_score(average="macro")`` over
    the labels present; ``"zero"`` / ``"one"`` equal it with ``labels=range(C)`` and
    ``zero_division=0`` / ``1``. NaN when no class is present under ``"exclude"``.
    """
    return _policy_mean(iou_per_class(cm), absent)


def mean_f1(cm, absent: str = "exclude") -> float:
    """Mean of :func:`f1_per_class` under the same absent-class policies as :func:`mean_iou`."""
    return _policy_mean(f1_per_class(cm), absent)


def pixel_accuracy(cm) -> float:
    """Correct labelled pixels / labelled pixels (NaN when there are none)."""
    cm, tp, _, _ = _stats(cm)
    total = cm.sum()
    return float(tp.sum() / total) if total > 0 else math.nan


def frequency_weighted_iou(cm) -> float:
    """Sum over classes of (share of labelled pixels in the class) x (its IoU)."""
    cm, _, true, _ = _stats(cm)
    total = cm.sum()
    if total == 0:
        return math.nan
    iou = iou_per_class(cm)
    present = true > 0  # a class with true pixels has a union > 0, so its IoU is defined
    return float((true[present] / total * iou[present]).sum())


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def summarize(cm, class_names: Sequence[str], absent: str = "exclude") -> dict:
    """Everything a report needs from one confusion matrix, JSON-ready (NaN -> None).

    Keys: ``mean_iou``, ``mean_f1`` (under ``absent_policy``, whose meaning is spelled out in
    ``absent_policy_description``), ``pixel_accuracy``, ``frequency_weighted_iou``,
    ``labelled_pixels``, ``per_class`` (name, index, iou, f1, true_pixels, predicted_pixels,
    absent) and ``confusion_matrix`` (rows = truth).
    """
    _check_policy(absent)
    cm = np.asarray(cm)
    if len(class_names) != cm.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {cm.shape[0]}-class confusion matrix")
    _, _, true, pred = _stats(cm)
    iou, f1 = iou_per_class(cm), f1_per_class(cm)
    return {
        "mean_iou": _num(mean_iou(cm, absent)),
        "mean_f1": _num(mean_f1(cm, absent)),
        "absent_policy": absent,
        "absent_policy_description": ABSENT_POLICIES[absent],
        "pixel_accuracy": _num(pixel_accuracy(cm)),
        "frequency_weighted_iou": _num(frequency_weighted_iou(cm)),
        "labelled_pixels": int(cm.sum()),
        "per_class": [
            {"name": str(name), "index": i, "iou": _num(iou[i]), "f1": _num(f1[i]),
             "true_pixels": int(true[i]), "predicted_pixels": int(pred[i]), "absent": bool(np.isnan(iou[i]))}
            for i, name in enumerate(class_names)
        ],
        "confusion_matrix": np.asarray(cm).astype(np.int64).tolist(),
    }


def summary_markdown(summary: dict, title: str | None = None) -> str:
    """A :func:`summarize` dict as a Markdown table (absent classes marked, policy stated)."""

    def fmt(v):
        return "–" if v is None else f"{v:.4f}"

    lines = [f"# {title}", ""] if title else []
    lines += ["| class | IoU | F1 | true pixels | predicted pixels |", "|---|---:|---:|---:|---:|"]
    for row in summary["per_class"]:
        name = row["name"] + (" (absent)" if row["absent"] else "")
        lines.append(f"| {name} | {fmt(row['iou'])} | {fmt(row['f1'])} | {row['true_pixels']} | {row['predicted_pixels']} |")
    lines += [
        "",
        f"- mean IoU: {fmt(summary['mean_iou'])} (policy `{summary['absent_policy']}`: {summary['absent_policy_description']})",
        f"- mean F1: {fmt(summary['mean_f1'])}",
        f"- pixel accuracy: {fmt(summary['pixel_accuracy'])}",
        f"- frequency-weighted IoU: {fmt(summary['frequency_weighted_iou'])}",
        f"- labelled pixels: {summary['labelled_pixels']}",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- streaming Keras metrics
def _batch_confusion(y_true, y_pred, num_classes: int, ignore_index: int | None, sample_weight=None):
    """(C, C) float32 confusion counts of one batch with keras.ops (XLA-friendly segment sum)."""
    t = ops.convert_to_tensor(y_true)
    p = ops.convert_to_tensor(y_pred)
    if len(p.shape) == len(t.shape) and t.shape[-1] == 1 and p.shape[-1] != 1:
        t = ops.squeeze(t, axis=-1)  # (B, H, W, 1) truth beside (B, H, W, C) scores or (B, H, W) indices
    if len(p.shape) == len(t.shape) + 1:
        p = ops.argmax(p, axis=-1)
    weight = None
    if sample_weight is not None:
        sw = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
        while len(sw.shape) < len(t.shape):
            sw = ops.expand_dims(sw, -1)
        weight = ops.reshape(ops.broadcast_to(sw, ops.shape(t)), (-1,))
    t = ops.reshape(ops.cast(t, "int32"), (-1,))
    p = ops.reshape(ops.cast(p, "int32"), (-1,))
    valid = ops.logical_and(ops.greater_equal(t, 0), ops.less(t, num_classes))
    if ignore_index is not None:
        valid = ops.logical_and(valid, ops.not_equal(t, ignore_index))
    valid = ops.logical_and(valid, ops.logical_and(ops.greater_equal(p, 0), ops.less(p, num_classes)))
    weight = ops.cast(valid, "float32") if weight is None else ops.cast(valid, "float32") * weight
    ids = ops.where(valid, t * num_classes + p, ops.zeros_like(t))
    counts = ops.segment_sum(weight, ids, num_segments=num_classes * num_classes, sorted=False)
    return ops.reshape(counts, (num_classes, num_classes))


def _keras_mean_iou(cm, absent: str):
    tp = ops.diagonal(cm)
    union = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - tp
    present = ops.greater(union, 0)
    iou = tp / ops.maximum(union, 1.0)
    if absent == "exclude":
        n = ops.sum(ops.cast(present, iou.dtype))
        value = ops.where(n > 0, ops.sum(iou) / ops.maximum(n, 1.0), ops.full_like(n, math.nan))
    else:
        value = ops.mean(ops.where(present, iou, ops.full_like(iou, 0.0 if absent == "zero" else 1.0)))
    return ops.cast(value, "float32")


def _state_dtype() -> str:
    # float64 keeps counts exact beyond 2**24 pixels per cell (float32 would not); JAX without
    # x64 has no float64, so fall back there.
    return "float64" if keras.backend.backend() in ("tensorflow", "torch") else "float32"


@keras.saving.register_keras_serializable(package="landseg")
class ConfusionMatrixMetric(keras.metrics.Metric):
    """Streaming confusion matrix over labelled pixels; ``result()`` is the mean IoU.

    ``y_true``: (B, H, W) or (B, H, W, 1) class indices (``ignore_index`` left out);
    ``y_pred``: (B, H, W, C) probabilities or logits (argmax) or (B, H, W) indices. The state
    is one (C, C) variable with ``aggregation="sum"``, so per-replica counts add up under
    ``tf.distribute``. ``confusion_matrix()`` / ``per_class_iou()`` / ``summary()`` give the
    numpy views; ``absent`` is the policy of :func:`mean_iou`.

    Kept beside ``keras.metrics.MeanIoU(ignore_class=255, sparse_y_pred=False)`` (which equals the
    ``exclude`` policy) for the named ``zero`` / ``one`` policies and the numpy views reports use.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX, name: str = "mean_iou",
                 absent: str = "exclude", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.absent = _check_policy(absent)
        self.total_cm = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros",
                                          dtype=_state_dtype(), aggregation="sum", name="confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        batch = _batch_confusion(y_true, y_pred, self.num_classes, self.ignore_index, sample_weight)
        self.total_cm.assign_add(ops.cast(batch, self.total_cm.dtype))

    def result(self):
        return _keras_mean_iou(self.total_cm, self.absent)

    def reset_state(self):
        self.total_cm.assign(ops.zeros((self.num_classes, self.num_classes), dtype=self.total_cm.dtype))

    def confusion_matrix(self) -> np.ndarray:
        """The accumulated (C, C) counts as int64 numpy (rows = truth)."""
        return np.rint(np.asarray(self.total_cm.numpy())).astype(np.int64)

    def per_class_iou(self) -> np.ndarray:
        return iou_per_class(self.confusion_matrix())

    def summary(self, class_names: Sequence[str]) -> dict:
        return summarize(self.confusion_matrix(), class_names, self.absent)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, ignore_index=self.ignore_index, absent=self.absent)
        return config


@keras.saving.register_keras_serializable(package="landseg")
class ClassIoU(keras.metrics.Metric):
    """Streaming IoU of one class (NaN while it is absent from both target and prediction).

    One per class (see :func:`class_iou_metrics`) puts per-class IoU into Keras logs, and so
    into CSVLogger and TensorBoard, next to the mean.
    """

    def __init__(self, num_classes: int, class_id: int, ignore_index: int | None = IGNORE_INDEX, name: str | None = None,
                 dtype=None):
        super().__init__(name=name or f"iou_{class_id}", dtype=dtype)
        self.num_classes = int(num_classes)
        self.class_id = int(class_id)
        if not 0 <= self.class_id < self.num_classes:
            raise ValueError(f"class_id {class_id} is not in 0..{self.num_classes - 1}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.counts = self.add_variable(shape=(3,), initializer="zeros", dtype=_state_dtype(),
                                        aggregation="sum", name="tp_fp_fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        cm = _batch_confusion(y_true, y_pred, self.num_classes, self.ignore_index, sample_weight)
        k = self.class_id
        tp = cm[k, k]
        fp = ops.sum(cm[:, k]) - tp
        fn = ops.sum(cm[k, :]) - tp
        self.counts.assign_add(ops.cast(ops.stack([tp, fp, fn]), self.counts.dtype))

    def result(self):
        tp = self.counts[0]
        union = ops.sum(self.counts)
        value = ops.where(union > 0, tp / ops.maximum(union, 1.0), ops.full_like(union, math.nan))
        return ops.cast(value, "float32")

    def reset_state(self):
        self.counts.assign(ops.zeros((3,), dtype=self.counts.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, class_id=self.class_id, ignore_index=self.ignore_index)
        return config


def class_iou_metrics(class_names: Sequence[str], ignore_index: int | None = IGNORE_INDEX, prefix: str = "iou_") -> list:
    """One :class:`ClassIoU` per class, named ``iou_<class name>`` (for ``model.compile(metrics=...)``)."""
    return [ClassIoU(len(class_names), i, ignore_index, name=prefix + re.sub(r"[^A-Za-z0-9_.-]+", "_", str(n)))
            for i, n in enumerate(class_names)]


__all__ = [
    "ABSENT_POLICIES",
    "confusion_matrix",
    "iou_per_class",
    "f1_per_class",
    "mean_iou",
    "mean_f1",
    "pixel_accuracy",
    "frequency_weighted_iou",
    "summarize",
    "summary_markdown",
    "ConfusionMatrixMetric",
    "ClassIoU",
    "class_iou_metrics",
]
