"""Keras callbacks for a landseg run: learning-rate schedule, NaN guard, checkpoints + resume state,
early stopping, history, TensorBoard scalars and image panels.

They share one mutable ``state`` dict (saved as the run's ``state.json`` after every epoch), so
a run killed at any point restarts from its last completed epoch with the same schedule,
best score, early-stopping counter and history.

Why these are hand-written rather than Keras' own (one line each):

* ``LearningRateController`` vs ``CosineDecay(warmup_target=...)`` / ``ReduceLROnPlateau``: one
  schedule function of the global step that survives a resume and an optimizer rebuilt at unfreeze,
  and adds plateau scaling and one-cycle, which Keras' schedules do not combine.
* ``NaNGuard`` vs ``TerminateOnNaN``: also stops when a weight (not only the loss) turns non-finite,
  and records why, so nothing is saved from that epoch and the message names it.
* ``RunCheckpoint`` vs ``ModelCheckpoint`` + ``BackupAndRestore`` + ``CSVLogger`` + ``EarlyStopping``:
  those keep separate states; resuming needs best score, patience counter, schedule and history
  to be one atomic ``state.json`` written with the checkpoints (``history.csv`` is rewritten from it,
  so a killed run keeps one continuous history).
* ``TensorBoardLogger`` vs ``TensorBoard``: steps are epoch numbers across resumes, and it adds
  per-class IoU and image / target / prediction panels in the class map's colours.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from landseg.config_schema import ScheduleSection
from landseg.io_utils import write_text
from landseg.runs import RunFolder



# ---------------------------------------------------------------------- learning rate
def lr_at(schedule: ScheduleSection, base_lr: float, step: int, total_steps: int, steps_per_epoch: int,
          plateau_scale: float = 1.0) -> float:
    """Learning rate at global batch ``step`` (0-based) of ``total_steps``."""
    name = schedule.name
    floor = base_lr * schedule.min_lr_fraction
    warm = int(round(schedule.warmup_epochs * steps_per_epoch))
    if warm > 0 and step < warm and name != "one_cycle":
        return base_lr * (0.1 + 0.9 * step / warm)
    if name in ("constant", "reduce_on_plateau"):
        return base_lr * plateau_scale
    if name == "cosine":
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if name == "one_cycle":
        peak = max(1, int(0.3 * total_steps)) if warm <= 0 else warm
        if step < peak:
            start = base_lr / 25
            return start + (base_lr - start) * 0.5 * (1 - math.cos(math.pi * step / peak))
        t = min(1.0, (step - peak) / max(1, total_steps - peak))
        return floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {name!r}")

log = logging.getLogger(__name__)


class LearningRateController(keras.callbacks.Callback):
    """Sets the optimizer's learning rate every batch from the global step, so it survives a
    resume and an optimizer rebuilt at unfreeze; runs reduce-on-plateau on val mIoU."""

    def __init__(self, schedule: ScheduleSection, base_lr: float, steps_per_epoch: int, epochs: int, state: dict):
        super().__init__()
        self.schedule, self.base_lr = schedule, base_lr
        self.steps_per_epoch, self.epochs, self.state = steps_per_epoch, epochs, state
        self.state.setdefault("plateau", {"scale": 1.0, "best": None, "wait": 0})
        self._epoch = 0

    def current_lr(self, epoch: int, batch: int) -> float:
        step = epoch * self.steps_per_epoch + batch
        return lr_at(self.schedule, self.base_lr, step, self.epochs * self.steps_per_epoch, self.steps_per_epoch,
                     self.state["plateau"]["scale"])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.current_lr(self._epoch, batch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.schedule.name != "reduce_on_plateau" or logs is None or "val_miou" not in logs:
            return
        p = self.state["plateau"]
        score = float(logs["val_miou"])
        if p["best"] is None or score > p["best"] + 1e-4:
            p["best"], p["wait"] = score, 0
        else:
            p["wait"] += 1
            if p["wait"] >= self.schedule.plateau_patience:
                p["scale"] *= self.schedule.plateau_factor
                p["wait"] = 0
                log.info(f"\nreduce_on_plateau: val mIoU has not improved for {self.schedule.plateau_patience} "
                      f"epochs; lr scale -> {p['scale']:.3g}")


# ---------------------------------------------------------------------- faults
class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, or at epoch end when any weight is non-finite
    (losses that clip probabilities can stay finite while the weights are already NaN), before
    anything is saved from that epoch."""

    def __init__(self):
        super().__init__()
        self.failed: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs, where):
        if self.failed is not None or not logs:
            return
        for key in ("loss", "val_loss"):
            v = logs.get(key)
            if v is not None and not math.isfinite(float(v)):
                self.failed = f"{key} became {float(v)} at epoch {self._epoch + 1}{where}"
                self.model.stop_training = True
                return

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f", batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "")
        if self.failed is None:
            bad = [w.path if hasattr(w, "path") else w.name for w in self.model.weights
                   if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
            if bad:
                self.failed = (f"{len(bad)} weight tensor(s) became NaN/inf during epoch {epoch + 1} "
                               f"(first: {bad[0]})")
                self.model.stop_training = True


# ---------------------------------------------------------------------- epoch bookkeeping
def write_history_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text(path, buf.getvalue())


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: best.keras on val mIoU, last.keras + optimizer state, history.csv,
    learning curves and ``state.json``; early stopping on val mIoU. Nothing is saved from an
    epoch whose loss went non-finite (the NaN guard's verdict), so the best model survives.

    ``state.json`` also sums the wall and CPU (process, all threads) seconds of the completed epochs,
    training + validation + checkpoints, across resumes (``wall_seconds``, ``cpu_seconds``; the
    run report shows them); data preparation, model building and the final reports are not in them."""

    def __init__(self, run_dir: Path, state: dict, nan_guard: NaNGuard, patience: int = 0):
        super().__init__()
        self.folder, self.state, self.nan_guard, self.patience = RunFolder(run_dir), state, nan_guard, patience
        state.setdefault("history", [])
        state.setdefault("best_val_miou", None)
        state.setdefault("best_epoch", None)
        state.setdefault("wait", 0)
        state.setdefault("epochs_completed", 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_guard.failed is not None:
            return
        logs = dict(logs or {})
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items() if np.ndim(v) == 0})
        score = row.get("val_miou")
        best = self.state["best_val_miou"]
        improved = score is not None and (best is None or score > best)
        if improved:
            self.state["best_val_miou"], self.state["best_epoch"] = score, epoch + 1
            self.state["wait"] = 0
        else:
            self.state["wait"] += 1
        self.folder.save_checkpoint(self.model, improved)
        self.state["history"] = [r for r in self.state["history"] if r["epoch"] <= epoch] + [row]
        self.state["epochs_completed"] = epoch + 1
        write_history_csv(self.folder.history, self.state["history"])
        try:
            from landseg.plots import plot_learning_curves

            plot_learning_curves(self.folder.history, self.folder.curves, metric="miou")
        except Exception as e:  # a plot must never kill a training
            log.warning(f"\nlearning curves not drawn: {e}")
        t0 = getattr(self, "_t0", None)
        if t0 is not None:
            self.state["wall_seconds"] = round(self.state.get("wall_seconds", 0.0) + time.perf_counter() - t0[0], 2)
            self.state["cpu_seconds"] = round(self.state.get("cpu_seconds", 0.0) + time.process_time() - t0[1], 2)
        self.folder.write_state(self.state)
        if self.patience and self.state["wait"] >= self.patience:
            log.info(f"\nearly stopping: val mIoU has not improved for {self.patience} epochs "
                  f"(best {self.state['best_val_miou']:.4f} at epoch {self.state['best_epoch']})")
            self.state["early_stopped"] = epoch + 1
            self.folder.write_state(self.state)
            self.model.stop_training = True


# ---------------------------------------------------------------------- TensorBoard
class TensorBoardLogger(keras.callbacks.Callback):
    """Per epoch: train/val loss and mIoU, per-class val IoU, learning rate, and image / target /
    prediction panels of fixed validation images in the dataset's palette. Steps are epoch
    numbers, so a resumed run continues the same curves."""

    def __init__(self, log_dir: str | os.PathLike, classmap, preview: tuple | None = None):
        super().__init__()
        import tensorflow as tf

        self.tf = tf
        self.log_dir = os.fspath(log_dir)
        self.classmap = classmap
        self.preview = preview  # (images float [0,1] (N,h,w,C), targets (N,h,w))
        self.writer = tf.summary.create_file_writer(self.log_dir)

    def write_scalars(self, epoch: int, logs: dict) -> None:
        tf = self.tf
        with self.writer.as_default(step=epoch + 1):
            for key, value in logs.items():
                if np.ndim(value) != 0:
                    continue
                if key.startswith("val_iou_"):
                    tag = f"iou_per_class/{key[len('val_iou_'):]}"
                elif key.startswith("val_"):
                    tag = f"{key[4:]}/val"
                elif key == "lr":
                    tag = "learning_rate"
                else:
                    tag = f"{key}/train"
                tf.summary.scalar(tag, float(value))
        self.writer.flush()

    def write_image(self, tag: str, array: np.ndarray, epoch: int) -> None:
        with self.writer.as_default(step=epoch + 1):
            self.tf.summary.image(tag, np.asarray(array, np.uint8)[None])
        self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.write_scalars(epoch, logs or {})
        if self.preview is not None:
            try:
                from landseg.plots import panel_array

                images, targets = self.preview
                from landseg.training.setup import predict_local

                probs = predict_local(self.model, images)  # the cached predict step, no epoch iterator per call
                preds = np.argmax(probs, axis=-1)
                self.write_image("predictions", panel_array(images, targets, preds, self.classmap), epoch)
            except Exception as e:  # a picture must never kill a training
                log.warning(f"\nTensorBoard panels not written: {e}")

    def on_train_end(self, logs=None):
        self.writer.flush()


class PerClassIoU(keras.callbacks.Callback):
    """Adds ``val_iou_<class>`` to the epoch logs from the mIoU metric's confusion matrix, which
    at epoch end holds the validation pass (Keras evaluates after training each epoch)."""

    def __init__(self, metric, classmap):
        super().__init__()
        self.metric, self.classmap = metric, classmap

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "val_miou" not in logs:
            return
        from landseg.metrics import iou_per_class
        from landseg.training.setup import metric_confusion

        iou = np.asarray(iou_per_class(metric_confusion(self.metric)), np.float64)
        for name, v in zip(self.classmap.class_names, iou):
            logs[f"val_iou_{name}"] = float(v)
