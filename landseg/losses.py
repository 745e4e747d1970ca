"""Segmentation losses that understand partial labels (``keras.ops`` only: TF, JAX and torch).

Targets are integer class maps (B, H, W) or (B, H, W, 1); predictions are per-pixel class
probabilities (B, H, W, C), or logits with ``from_logits=True``. A pixel whose target is
``ignore_index`` (or any value outside ``0..C-1``) is unlabelled: it contributes nothing to
the loss and receives exactly zero gradient. Its prediction is replaced before any arithmetic
(the "safe input" form of ``where``), so even a NaN there cannot leak into the gradient.
A batch with no labelled pixel gives loss 0 and zero gradients.

With default options and nothing ignored, ``dice`` and ``focal`` compute what
segmentation-models' ``DiceLoss()`` and ``CategoricalFocalLoss()`` compute (same reductions,
smoothing, clipping), and ``partial_ce`` what Keras' ``CategoricalCrossentropy`` computes
(with ``class_weights`` = Keras per-pixel ``sample_weight`` of the true class's weight).

Names for :func:`get_loss`: ``partial_ce`` (alias ``ce``), ``focal``, ``dice``, and sums of
them written with ``+`` (``dice+focal`` as in the report's segmentation-models setup,
``ce+dice``), weighted by the ``weights`` option.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

EPSILON = 1e-7  # keras.backend.epsilon(), the clipping segmentation-models and Keras use
SMOOTH = 1e-5  # segmentation-models' default dice smoothing

_PACKAGE = "landseg"


# ---------------------------------------------------------------------- shared preparation
def _labelled(y_true, y_pred, num_classes: int, ignore_index: int | None, fill: float):
    """(onehot, valid, safe_pred): one-hot targets zeroed at unlabelled pixels, the labelled
    mask as float (B, H, W), and predictions with unlabelled pixels replaced by ``fill``."""
    y = y_true
    if len(y.shape) == len(y_pred.shape):
        y = ops.squeeze(y, axis=-1)
    y = ops.cast(y, "int32")
    valid = ops.logical_and(ops.greater_equal(y, 0), ops.less(y, num_classes))
    if ignore_index is not None:
        valid = ops.logical_and(valid, ops.not_equal(y, ignore_index))
    safe_y = ops.where(valid, y, ops.zeros_like(y))
    validf = ops.cast(valid, y_pred.dtype)
    onehot = ops.one_hot(safe_y, num_classes, dtype=y_pred.dtype) * validf[..., None]
    safe_pred = ops.where(valid[..., None], y_pred, ops.full_like(y_pred, fill))
    return onehot, validf, safe_pred


def _weights_tensor(class_weights, dtype):
    return None if class_weights is None else ops.convert_to_tensor(class_weights, dtype=dtype)


def _check_weights(class_weights, num_classes: int, where: str):
    if class_weights is None:
        return None
    weights = [float(v) for v in class_weights]
    if len(weights) != num_classes:
        raise ValueError(f"{where}: class_weights has {len(weights)} values for {num_classes} classes")
    return weights


def _batch_loss(value):
    """The batch's loss as shape (1,), not a scalar.

    Keras' reduction passes scalars through untouched, skipping the division by the number of
    replicas that it applies to every other loss under ``tf.distribute``; the trainer then
    multiplies logged losses back and sums gradients over replicas, so a scalar loss would be
    logged and applied N times too large. A (1,) tensor takes the normal path: ``__call__``
    still returns a scalar, equal to ``value`` on one device.
    """
    return ops.reshape(value, (1,))


class _SegLoss(keras.losses.Loss):
    """Common options: class count, ignore value, logits or probabilities."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, from_logits: bool = False,
                 name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if int(num_classes) < 2:
            raise ValueError(f"{type(self).__name__}: num_classes must be at least 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.from_logits = bool(from_logits)

    def _prepare(self, y_true, y_pred):
        # probabilities: a uniform fill; logits: zeros (softmax of zeros is uniform)
        fill = 0.0 if self.from_logits else 1.0 / self.num_classes
        return _labelled(y_true, y_pred, self.num_classes, self.ignore_index, fill)

    def _probabilities(self, pred):
        return ops.softmax(pred, axis=-1) if self.from_logits else pred

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, ignore_index=self.ignore_index, from_logits=self.from_logits)
        return config


# ---------------------------------------------------------------------- partial cross-entropy
@keras.saving.register_keras_serializable(package=_PACKAGE)
class PartialCrossEntropy(_SegLoss):
    """Cross-entropy averaged over labelled pixels only (the report's pCE).

    ``sum_labelled w[y] * (1 - p_y)**gamma * -log(p_y) / n_labelled``. ``gamma`` > 0 adds focal
    modulation; ``class_weights`` scale each pixel by its true class's weight (the divisor stays
    the labelled-pixel count, as Keras' sample weights do). Probabilities are renormalised to
    sum to 1 and clipped to [1e-7, 1 - 1e-7] exactly as Keras' categorical cross-entropy does;
    with ``from_logits`` a log-softmax is used instead.
    """

    def __init__(self, num_classes, ignore_index=None, gamma: float = 0.0, class_weights=None,
                 from_logits=False, name="partial_ce", **kwargs):
        super().__init__(num_classes, ignore_index, from_logits, name=name, **kwargs)
        self.gamma = float(gamma)
        self.class_weights = _check_weights(class_weights, self.num_classes, name)

    def call(self, y_true, y_pred):
        onehot, valid, pred = self._prepare(y_true, y_pred)
        if self.from_logits:
            logp = ops.log_softmax(pred, axis=-1)
            p = ops.exp(logp)
        else:
            p = pred / ops.maximum(ops.sum(pred, axis=-1, keepdims=True), EPSILON)
            p = ops.clip(p, EPSILON, 1.0 - EPSILON)
            logp = ops.log(p)
        w = _weights_tensor(self.class_weights, pred.dtype)
        term = onehot * logp if w is None else onehot * logp * w
        per_pixel = -ops.sum(term, axis=-1)
        if self.gamma:
            p_true = ops.clip(ops.sum(onehot * p, axis=-1), EPSILON, 1.0 - EPSILON)
            per_pixel = per_pixel * ops.power(1.0 - p_true, self.gamma)
        return _batch_loss(ops.sum(per_pixel) / ops.maximum(ops.sum(valid), 1.0))

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma, class_weights=self.class_weights)
        return config


# ---------------------------------------------------------------------- focal loss
@keras.saving.register_keras_serializable(package=_PACKAGE)
class FocalLoss(_SegLoss):
    """Categorical focal loss, ``-alpha * (1 - p)**gamma * log(p)`` at the true class.

    Reduced like segmentation-models' ``CategoricalFocalLoss``: the mean over all labelled
    pixels *and* the C channels (so it is 1/C of a per-pixel mean), probabilities clipped to
    [1e-7, 1 - 1e-7] and not renormalised. ``class_weights`` (not in segmentation-models)
    scale each class's term.
    """

    def __init__(self, num_classes, ignore_index=None, alpha: float = 0.25, gamma: float = 2.0,
                 class_weights=None, from_logits=False, name="focal", **kwargs):
        super().__init__(num_classes, ignore_index, from_logits, name=name, **kwargs)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.class_weights = _check_weights(class_weights, self.num_classes, name)

    def call(self, y_true, y_pred):
        onehot, valid, pred = self._prepare(y_true, y_pred)
        p = ops.clip(self._probabilities(pred), EPSILON, 1.0 - EPSILON)
        loss = -onehot * (self.alpha * ops.power(1.0 - p, self.gamma) * ops.log(p))
        w = _weights_tensor(self.class_weights, pred.dtype)
        if w is not None:
            loss = loss * w
        return _batch_loss(ops.sum(loss) / (ops.maximum(ops.sum(valid), 1.0) * self.num_classes))

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, gamma=self.gamma, class_weights=self.class_weights)
        return config


# ---------------------------------------------------------------------- dice loss
@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiceLoss(_SegLoss):
    """``1 - F_beta`` score on soft predictions, as segmentation-models' ``DiceLoss``.

    Per class: ``((1+b²)tp + smooth) / ((1+b²)tp + b²fn + fp + smooth)`` with tp, fp, fn summed
    over the batch's labelled pixels (``per_image=False``) or per image then averaged over the
    images that have labelled pixels (``per_image=True``). Scores are multiplied by
    ``class_weights`` and averaged over classes (so weights that do not average to 1 shift
    the minimum, exactly as in segmentation-models). Unlabelled pixels count as neither
    prediction nor target; a batch with no labelled pixel gives 0.
    """

    def __init__(self, num_classes, ignore_index=None, beta: float = 1.0, smooth: float = SMOOTH,
                 per_image: bool = False, class_weights=None, from_logits=False, name="dice", **kwargs):
        super().__init__(num_classes, ignore_index, from_logits, name=name, **kwargs)
        self.beta = float(beta)
        self.smooth = float(smooth)
        self.per_image = bool(per_image)
        self.class_weights = _check_weights(class_weights, self.num_classes, name)

    def call(self, y_true, y_pred):
        onehot, valid, pred = self._prepare(y_true, y_pred)
        pr = self._probabilities(pred) * valid[..., None]
        axes = (1, 2) if self.per_image else (0, 1, 2)
        tp = ops.sum(onehot * pr, axis=axes)
        fp = ops.sum(pr, axis=axes) - tp
        fn = ops.sum(onehot, axis=axes) - tp
        b2 = self.beta**2
        denominator = ops.maximum((1 + b2) * tp + b2 * fn + fp + self.smooth, 1e-12)
        score = ((1 + b2) * tp + self.smooth) / denominator
        if self.per_image:  # (B, C) -> mean over the images that carry labels
            has_labels = ops.cast(ops.greater(ops.sum(valid, axis=(1, 2)), 0), score.dtype)
            score = ops.sum(score * has_labels[:, None], axis=0) / ops.maximum(ops.sum(has_labels), 1.0)
        w = _weights_tensor(self.class_weights, score.dtype)
        if w is not None:
            score = score * w
        any_labelled = ops.cast(ops.greater(ops.sum(valid), 0), score.dtype)
        return _batch_loss((1.0 - ops.mean(score)) * any_labelled)

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta, smooth=self.smooth, per_image=self.per_image, class_weights=self.class_weights)
        return config


# ---------------------------------------------------------------------- combinations
@keras.saving.register_keras_serializable(package=_PACKAGE)
class CombinedLoss(keras.losses.Loss):
    """Weighted sum of losses: ``sum(w_i * loss_i)``."""

    def __init__(self, losses: Sequence[keras.losses.Loss], weights: Sequence[float] | None = None,
                 name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        losses = [keras.saving.deserialize_keras_object(l) if isinstance(l, dict) else l for l in losses]
        if not losses:
            raise ValueError("CombinedLoss needs at least one loss")
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        if len(weights) != len(losses):
            raise ValueError(f"CombinedLoss: {len(weights)} weights for {len(losses)} losses")
        super().__init__(name=name or "_plus_".join(l.name for l in losses), reduction=reduction, dtype=dtype)
        self.losses = list(losses)
        self.weights = weights

    def call(self, y_true, y_pred):
        total = None
        for loss, weight in zip(self.losses, self.weights):
            value = loss.call(y_true, y_pred) * weight
            total = value if total is None else total + value
        return total

    def get_config(self):
        config = super().get_config()
        config.update(losses=[keras.saving.serialize_keras_object(l) for l in self.losses], weights=self.weights)
        return config


# ---------------------------------------------------------------------- registry
_BASE = {"partial_ce": PartialCrossEntropy, "focal": FocalLoss, "dice": DiceLoss}
_ALIASES = {"ce": "partial_ce", "pce": "partial_ce", "cross_entropy": "partial_ce", "focal_loss": "focal",
            "dice_loss": "dice"}
_NAMED = ("partial_ce", "focal", "dice", "dice+focal", "ce+dice")
_COMMON = ("from_logits",)
_OPTIONS = {
    "partial_ce": ("gamma", "class_weights") + _COMMON,
    "focal": ("alpha", "gamma", "class_weights") + _COMMON,
    "dice": ("beta", "smooth", "per_image", "class_weights") + _COMMON,
}


def available_losses() -> list[str]:
    """The documented loss names (any ``+`` sum of ``partial_ce``/``ce``, ``focal``, ``dice`` also works)."""
    return list(_NAMED)


def loss_options(name: str) -> dict[str, tuple[str, ...]]:
    """Options each part of ``name`` accepts, e.g. ``{"dice": (...), "focal": (...)}``."""
    return {part: _OPTIONS[part] for part in _parts(name)}


def _parts(name: str) -> list[str]:
    parts = []
    for raw in str(name).lower().replace(" ", "").split("+"):
        part = _ALIASES.get(raw, raw)
        if part not in _BASE:
            raise ValueError(f"unknown loss {raw!r} in {name!r}; available: {', '.join(_NAMED)} "
                             f"(or '+' sums of {', '.join(sorted(_BASE))}; aliases {', '.join(sorted(_ALIASES))})")
        parts.append(part)
    if len(set(parts)) != len(parts):
        raise ValueError(f"loss {name!r} names the same loss twice; use the 'weights' option instead")
    return parts


def get_loss(name: str, num_classes: int, ignore_index: int | None = None, **options) -> keras.losses.Loss:
    """A Keras loss by name, ignoring pixels whose target is ``ignore_index``.

    Options go to every part that accepts them (``class_weights``, ``gamma``, ``from_logits``
    ...); a dict under a part's name (``focal={"gamma": 3}``) goes to that part only and wins;
    ``weights=[w1, w2]`` weights the parts of a ``+`` combination. An option that no part
    accepts raises ``ValueError`` naming the valid ones.
    """
    parts = _parts(name)
    weights = options.pop("weights", None)
    per_part = {p: dict(options.pop(p)) for p in list(options) if p in _BASE}
    for alias, p in _ALIASES.items():
        if alias in options:
            per_part.setdefault(p, {}).update(options.pop(alias))
    accepted = {o for p in parts for o in _OPTIONS[p]}
    unknown = sorted(set(options) - accepted)
    for p, opts in per_part.items():
        if p not in parts:
            raise ValueError(f"options given for {p!r}, which is not part of loss {name!r}")
        unknown += [f"{p}.{o}" for o in opts if o not in _OPTIONS[p]]
    if unknown:
        valid = "; ".join(f"{p}: {', '.join(_OPTIONS[p])}" for p in parts)
        raise ValueError(f"loss {name!r}: unknown option(s) {', '.join(unknown)}; valid options: {valid}, "
                         "and 'weights' for combinations")
    losses = []
    for p in parts:
        kwargs = {k: v for k, v in options.items() if k in _OPTIONS[p]}
        kwargs.update(per_part.get(p, {}))
        losses.append(_BASE[p](num_classes, ignore_index=ignore_index, **kwargs))
    if len(losses) == 1:
        if weights is not None:
            raise ValueError(f"loss {name!r}: 'weights' is for '+' combinations")
        return losses[0]
    return CombinedLoss(losses, weights, name="_plus_".join(parts))


__all__ = [
    "get_loss",
    "available_losses",
    "loss_options",
    "PartialCrossEntropy",
    "FocalLoss",
    "DiceLoss",
    "CombinedLoss",
]
