"""Learning-rate finder (``python -m landseg.lr_find``, or ``train.lr_find=true`` before training).

Trains for a few dozen batches while the learning rate grows exponentially from
``lr_find.min_lr`` to ``lr_find.max_lr``, records the (smoothed) loss, plots loss against
learning rate and suggests the rate where the loss falls fastest (Smith 2017, fastai). The
model's weights are restored afterwards, so ``train.lr_find=true`` can run it before training.
"""

from __future__ import annotations

import logging

import math
import os
from pathlib import Path

from landseg.config import Config

log = logging.getLogger(__name__)


def suggest_lr(lrs, losses) -> float:
    """The learning rate of steepest descent of the smoothed loss (in log-lr), before divergence,
    capped at a tenth of the lr of the lowest loss (Smith's rule: a short sweep on a noisy loss
    can put the steepest point right at the edge of divergence)."""
    import numpy as np

    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    ok = np.isfinite(losses)
    lrs, losses = lrs[ok], losses[ok]
    if len(lrs) < 3:
        return float(lrs[0] if len(lrs) else 1e-3)
    # Only up to the minimum: after it the loss is diverging.
    stop = int(np.argmin(losses)) + 1
    lrs, losses = lrs[: max(stop, 3)], losses[: max(stop, 3)]
    grad = np.gradient(losses, np.log10(lrs))
    return float(min(lrs[int(np.argmin(grad))], lrs[int(np.argmin(losses))] / 10))


def run_finder(model, train_ds, min_lr: float, max_lr: float, steps: int, beta: float = 0.9):
    """(lrs, smoothed losses): one batch per lr, exponentially spaced; stops early on divergence.
    The model's weights and optimizer state are put back afterwards."""
    import keras
    import numpy as np

    weights = [np.array(w) for w in model.get_weights()]
    opt_vars = [np.array(keras.ops.convert_to_numpy(v)) for v in model.optimizer.variables] if model.optimizer.built else None
    lrs, losses = [], []
    avg, best = 0.0, math.inf
    factor = (max_lr / min_lr) ** (1.0 / max(1, steps - 1))
    it = iter(train_ds)
    for i in range(steps):
        lr = min_lr * factor ** i
        model.optimizer.learning_rate = lr
        x, y = next(it)
        out = model.train_on_batch(x, y, return_dict=True)
        loss = float(out["loss"])
        if not math.isfinite(loss):
            break
        avg = beta * avg + (1 - beta) * loss
        smooth = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if i > 5 and smooth > 4 * best:
            break
    model.set_weights(weights)
    if opt_vars is not None and len(opt_vars) == len(model.optimizer.variables):
        for v, value in zip(model.optimizer.variables, opt_vars):
            v.assign(value)
    else:
        for v in model.optimizer.variables:
            v.assign(keras.ops.zeros(v.shape, v.dtype))
    return lrs, losses


def find_lr(model, train_ds, config: Config, out_dir: str | os.PathLike) -> dict:
    """Run the finder on a compiled model; writes ``lr_find.png`` and ``lr_find.json`` into ``out_dir``."""
    from landseg.io_utils import write_json
    from landseg.plots import plot_lr_finder

    f = config.lr_find
    lrs, losses = run_finder(model, train_ds, float(f.min_lr), float(f.max_lr), int(f.steps))
    suggestion = suggest_lr(lrs, losses)
    if len(lrs) and losses[-1] <= min(losses) and lrs[-1] >= float(f.max_lr) * 0.99:
        log.info("lr finder: the loss was still falling at lr_find.max_lr; the suggestion is a lower bound "
              "(raise lr_find.max_lr or lr_find.steps)")
    out_dir = Path(out_dir)
    plot_lr_finder(lrs, losses, suggestion, out_dir / "lr_find.png")
    result = {"suggestion": suggestion, "lrs": [float(v) for v in lrs], "losses": [float(v) for v in losses]}
    write_json(out_dir / "lr_find.json", result)
    log.info(f"lr finder: {len(lrs)} steps from {lrs[0]:.2g} to {lrs[-1]:.2g}; suggested lr {suggestion:.3g} "
          f"(plot: {out_dir / 'lr_find.png'})")
    return result


def lr_find_run(config: Config) -> tuple[dict, Path]:
    """Build the configured model and data, run the finder; writes ``<output_dir>/<run>-lr_find/``.
    Returns (result, output folder)."""
    import keras

    from landseg.runs import select as runs
    from landseg.training.setup import assemble_run, check_crop_size

    check_crop_size(config)
    keras.utils.set_random_seed(int(config.run.seed))
    out_dir = Path(config.run.output_dir) / f"{runs.default_run_name(config)}-lr_find"
    runs.check_writable(out_dir)
    parts = assemble_run(config)
    return find_lr(parts.model, parts.train_ds.repeat(), config, out_dir), out_dir
