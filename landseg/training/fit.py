"""Fit: one training run from a resolved config to a finished run folder (:func:`run_training`).

A run writes into ``<run.output_dir>/<run name>/`` (config, run artifact, best/last checkpoints,
history, plots, per-class IoU) and ``<run.tensorboard_dir>/<run name>/``; started again with the
same config after a crash, it continues from its last completed epoch.
"""

from __future__ import annotations

import logging

import time
from pathlib import Path

from landseg import config as cfg
from landseg.run_artifact import save_run, split_record
from landseg.training import runs
from landseg.training.setup import (build_datasets, cardinality, check_crop_size, compile_model, is_chief,
                                    make_miou_metric, make_strategy, prepare_data, preview_batch, restore_optimizer,
                                    unfreeze_all)

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the best model so far is kept."""


def _configure_threads(run: dict) -> None:
    """``run.intra_op_threads`` / ``run.inter_op_threads`` (null: what ``import landseg`` chose)."""
    from landseg import runtime

    given = {k: run[f"{k}_threads"] for k in ("intra_op", "inter_op") if run.get(f"{k}_threads") is not None}
    if not given:
        return
    try:
        runtime.configure_threads(**given)
    except runtime.ThreadingError as e:
        raise cfg.ConfigError(f"config key 'run.{next(iter(given))}_threads': {e}") from e


def run_training(config: dict, callbacks=None, strategy=None) -> Path:
    """Train from a (partial) config dict merged over the defaults; returns the run folder.

    ``callbacks``: extra Keras callbacks (used by tests and self-training). Raises
    :class:`TrainingDiverged` on a NaN/inf loss (best model kept), :class:`runs.OutputError` when
    the outputs cannot be written, :class:`landseg.config.ConfigError` on a bad config.
    """
    config = cfg.from_dict(config)
    size_multiple = check_crop_size(config)  # before any folder is made or data read
    _configure_threads(config["run"])  # before any TensorFlow op starts its runtime
    t_start = time.time()
    run_dir, state = runs.choose_run_dir(config)
    name = run_dir.name
    chief = is_chief()
    if not chief:  # other workers write into a throwaway folder
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix=f"landseg-worker-{name}-"))
    tb_dir = Path(config["run"]["tensorboard_dir"]) / name
    runs.check_writable(run_dir)
    runs.check_writable(tb_dir)

    import keras

    from landseg.training import callbacks as cbs

    seed = int(config["run"]["seed"])
    keras.utils.set_random_seed(seed)
    t = config["train"]
    if t["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("float32")
    strategy = strategy or make_strategy(t["strategy"])
    replicas = strategy.num_replicas_in_sync

    resumed = state is not None
    if resumed:
        log.info(f"resuming {run_dir} after epoch {state['epochs_completed']} of {t['epochs']}")
    else:
        state = {"epochs_completed": 0, "finished": False}
        log.info(f"run folder: {run_dir}")

    train, val, classmap, hist_ref, hist_file = prepare_data(config, run_dir)
    batch = int(t["batch_size"])
    train_ds, val_ds = build_datasets(config, train, val, classmap, hist_ref, batch)
    steps = t["steps_per_epoch"] or cardinality(train_ds)
    if steps is None:
        raise cfg.ConfigError("the training dataset has no known length; set train.steps_per_epoch")
    accum = int(t["grad_accum_steps"])
    if accum > 1 and steps % accum:
        steps = max(accum, steps - steps % accum)  # whole updates only: checkpoints never hold half-accumulated grads
    train_ds = train_ds.repeat()
    val_steps = t["val_steps"] or cardinality(val_ds)
    log.info(f"{len(train)} training / {len(val)} validation images, {classmap.num_classes} classes, "
          f"{steps} steps/epoch of batch {batch}" + (f" x {accum} accumulated" if accum > 1 else "")
          + (f" over {replicas} replicas" if replicas > 1 else ""))
    preview = preview_batch(val_ds, int(t["num_preview"]))
    bands = int(train_ds.element_spec[0].shape[-1])

    from landseg.models import build_model

    frozen = bool(t["freeze_encoder"]) and (t["unfreeze_at_epoch"] is None
                                             or state["epochs_completed"] < t["unfreeze_at_epoch"])
    build_options = dict(config["model"]["options"])
    if frozen:
        build_options["freeze_encoder"] = True
    with strategy.scope():
        model = build_model(config["model"]["name"], classmap.num_classes, input_shape=(None, None, bands),
                            **build_options)
        if t["init_from"] and not resumed:
            model.load_weights(t["init_from"])
            log.info(f"initialised from {t['init_from']}")
        if frozen:
            log.info(f"encoder frozen: {len(model.trainable_weights)} of {len(model.weights)} weights trainable")
        miou = make_miou_metric(classmap)
        compile_model(model, config, classmap, miou)
    runs.check_free_space(run_dir, runs.estimate_output_bytes(model.count_params(), t["epochs"]))

    if resumed:
        model.load_weights(run_dir / "last.keras")
        restore_optimizer(model, run_dir / "last_optimizer.npz", strategy)
    else:
        runs.write_config(run_dir, config)
        d = config["data"]
        save_run(run_dir, model=config["model"]["name"], model_options=config["model"]["options"], classmap=classmap,
                 bands=bands, size_multiple=size_multiple, hist_reference=hist_file,
                 unknown_mask_values=d["unknown_mask_values"],
                 split=split_record(train, val, val_fraction=d["val_fraction"], seed=d["split_seed"],
                                    by_group=d["split_by_group"]))
        runs.write_state(run_dir, state)

    if t["lr_find"] and not resumed:
        from landseg.training.lr_finder import find_lr

        result = find_lr(model, train_ds, config, run_dir)
        state["lr_found"] = float(result["suggestion"])
        runs.write_state(run_dir, state)
        log.info(f"lr finder suggests {result['suggestion']:.3g}; training with it")
    base_lr = float(state.get("lr_found") or config["optimizer"]["lr"])

    nan_guard = cbs.NaNGuard()
    lr_cb = cbs.LearningRateController(config["schedule"], base_lr, steps, t["epochs"], state)
    per_class = cbs.PerClassIoU(miou, classmap)
    tb = cbs.TensorBoardLogger(tb_dir, classmap, preview)
    ckpt = cbs.RunCheckpoint(run_dir, state, nan_guard, patience=int(t["early_stopping_patience"]))
    cb_list = [nan_guard, lr_cb, per_class, tb, ckpt]
    cb_list += list(callbacks or [])

    start = int(state["epochs_completed"])
    segments = [(start, t["epochs"])]
    unfreeze = t["unfreeze_at_epoch"]
    if t["freeze_encoder"] and unfreeze is not None and start < unfreeze < t["epochs"]:
        segments = [(start, unfreeze), (unfreeze, t["epochs"])]
    for i, (first, last) in enumerate(segments):
        if i > 0:
            unfreeze_all(model)
            log.info(f"epoch {first + 1}: encoder unfrozen, {len(model.trainable_weights)} weights trainable")
            with strategy.scope():
                compile_model(model, config, classmap, miou)
        if first >= last:
            continue
        model.fit(train_ds, validation_data=val_ds, epochs=last, initial_epoch=first, steps_per_epoch=steps,
                  validation_steps=val_steps, callbacks=cb_list, verbose=t["verbose"], shuffle=False)
        if nan_guard.failed or model.stop_training and state.get("early_stopped"):
            break

    from landseg.training.finish import finish

    finish(model, run_dir, state, classmap, val_ds, val_steps, preview, tb, diverged=nan_guard.failed is not None)
    log.info(f"done in {time.time() - t_start:.0f} s: {run_dir}")
    if nan_guard.failed:
        best = state.get("best_val_miou")
        kept = (f"the best model so far (val mIoU {best:.4f}, epoch {state['best_epoch']}) is kept in "
                f"{run_dir / 'best.keras'}" if best is not None else "no epoch finished, so there is no best model")
        raise TrainingDiverged(f"training stopped: {nan_guard.failed}; {kept}. Try a lower optimizer.lr, "
                               "optimizer.clipnorm, or train.mixed_precision=false.")
    return run_dir


