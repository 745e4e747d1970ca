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
from landseg.config_schema import RunSection
from landseg.errors import LandsegError
from landseg.runs import RunFolder, save_run, split_record
from landseg.runs import select as runs
from landseg.training.setup import (assemble_run, cardinality, check_crop_size, check_step_memory, compile_model, is_chief,
                                    make_strategy, prepare_data, preview_batch, restore_optimizer,
                                    unfreeze_all)

log = logging.getLogger(__name__)


class TrainingDiverged(LandsegError, RuntimeError):
    """The loss became NaN/inf; the best model so far is kept."""

    exit_code = 3


class WorkerLost(LandsegError, RuntimeError):
    """Multi-worker training: another worker stopped (its collectives failed); the last completed epoch is kept."""

    exit_code = 1
    hint = ("start every worker again with the same command (and TF_CONFIG): the run continues from its last "
            "completed epoch")


def _configure_threads(run: RunSection) -> None:
    """``run.intra_op_threads`` / ``run.inter_op_threads`` (null: what ``import landseg`` chose)."""
    from landseg import runtime

    chosen = {"intra_op": run.intra_op_threads, "inter_op": run.inter_op_threads}
    given = {k: v for k, v in chosen.items() if v is not None}
    if not given:
        return
    try:
        runtime.configure_threads(**given)
    except runtime.ThreadingError as e:
        raise cfg.ConfigError(f"config key 'run.{next(iter(given))}_threads': {e}") from e


def run_training(config: dict | cfg.Config, callbacks=None, strategy=None) -> Path:
    """Train from a (partial) config dict merged over the defaults; returns the run folder.

    ``callbacks``: extra Keras callbacks (used by tests and self-training). Raises
    :class:`TrainingDiverged` on a NaN/inf loss (best model kept), :class:`runs.OutputError` when
    the outputs cannot be written, :class:`landseg.config.ConfigError` on a bad config.
    """
    config = cfg.from_dict(config)
    _configure_threads(config.run)  # before any TensorFlow op starts its runtime
    size_multiple = check_crop_size(config)  # before any folder is made or data read
    _check_cpu_jit(config.train)
    from landseg.classmaps import get_classmap
    from landseg.data.bands import band_count

    check_step_memory(config, get_classmap(config.data.classmap).num_classes, band_count(config.data.bands))
    t_start = time.time()
    run_dir, state = runs.choose_run_dir(config)
    name = run_dir.name
    chief = is_chief()
    if not chief:  # other workers write into a throwaway folder (TensorFlow's multi-worker practice)
        import shutil
        import tempfile

        chief_dir, run_dir = run_dir, Path(tempfile.mkdtemp(prefix=f"landseg-worker-{name}-"))
        if state is not None:  # resuming: start from the chief's last epoch too (its folder is only read)
            RunFolder(chief_dir).copy_to(run_dir)
        try:
            _run_locked(config, run_dir, state, run_dir / "tensorboard", size_multiple, callbacks, strategy, t_start)
            return chief_dir
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    tb_dir = Path(config.run.tensorboard_dir) / name
    return _run_locked(config, run_dir, state, tb_dir, size_multiple, callbacks, strategy, t_start)


def _run_locked(config: cfg.Config, run_dir: Path, state: dict | None, tb_dir: Path, size_multiple: int, callbacks, strategy,
                t_start: float) -> Path:
    created = [d for d in (run_dir, tb_dir) if not d.exists()]
    try:
        runs.check_writable(run_dir)
        runs.check_writable(tb_dir)
        from landseg.io_utils import remove_stale_temps
        from landseg.runs.lock import RunLock

        with RunLock(run_dir):  # a second copy of this run stops here, naming the holder
            state = RunFolder(run_dir).read_state() if state is not None else None  # as the previous holder left it
            removed = remove_stale_temps(run_dir)
            if removed:
                log.info(f"{run_dir}: removed {len(removed)} temporary file(s) of an interrupted save: {', '.join(removed)}")
            try:
                return _train(config, run_dir, state, tb_dir, size_multiple, callbacks, strategy, t_start)
            except Exception as e:  # a file TF failed on (while counting, previewing, fitting or scoring): name it
                _raise_out_of_memory(e, config)
                _raise_data_error(e, config)
                raise
    except BaseException:
        for d in created:  # a run that stopped before writing anything leaves no empty folder behind
            try:
                d.rmdir()
            except OSError:
                pass
        raise


def _train(config: cfg.Config, run_dir: Path, state: dict | None, tb_dir: Path, size_multiple: int, callbacks, strategy,
           t_start: float) -> Path:

    import keras

    from landseg.training import callbacks as cbs

    seed = int(config.run.seed)
    keras.utils.set_random_seed(seed)
    t = config.train
    keras.mixed_precision.set_global_policy(cfg.POLICIES[t.mixed_precision])
    strategy = strategy or make_strategy(t.strategy)
    replicas = strategy.num_replicas_in_sync

    folder = RunFolder(run_dir)
    resumed = state is not None
    if resumed:
        log.info(f"resuming {run_dir} after epoch {state['epochs_completed']} of {t.epochs}")
    else:
        state = {"epochs_completed": 0, "finished": False}
        log.info(f"run folder: {run_dir}")

    frozen = bool(t.freeze_encoder) and (t.unfreeze_at_epoch is None
                                             or state["epochs_completed"] < t.unfreeze_at_epoch)
    parts = assemble_run(config, folder, strategy=strategy, frozen=frozen, init_from=None if resumed else t.init_from)
    train, val, classmap, model, miou = parts.train, parts.val, parts.classmap, parts.model, parts.miou
    train_ds, val_ds = parts.train_ds, parts.val_ds
    batch = int(t.batch_size)
    steps = t.steps_per_epoch or cardinality(train_ds)
    if steps is None:
        raise cfg.ConfigError("the training dataset has no known length; set train.steps_per_epoch")
    accum = int(t.grad_accum_steps)
    if accum > 1 and steps % accum:
        steps = max(accum, steps - steps % accum)  # whole updates only: checkpoints never hold half-accumulated grads
    train_ds = train_ds.repeat()
    val_steps = t.val_steps or cardinality(val_ds)
    if val_steps is None:  # grid tiles: count them once, so Keras knows the length (no "ran out of data" warning)
        val_ds, val_steps = _with_known_length(val_ds)
    log.info(f"{len(train)} training / {len(val)} validation images, {classmap.num_classes} classes, "
          f"{steps} steps/epoch of batch {batch}" + (f" x {accum} accumulated" if accum > 1 else "")
          + (f" over {replicas} replicas" if replicas > 1 else ""))
    preview = preview_batch(val_ds, int(t.num_preview))
    bands = int(train_ds.element_spec[0].shape[-1])
    runs.check_free_space(run_dir, runs.estimate_output_bytes(model.count_params(), t.epochs))

    if resumed:
        _resume_weights(model, run_dir, state, strategy)
    else:
        folder.write_config(config.to_dict())
        d = config.data
        save_run(run_dir, model=config.model.name, model_options=config.model.options, classmap=classmap,
                 bands=bands, size_multiple=size_multiple, hist_reference=parts.hist_ref is not None,
                 unknown_mask_values=d.unknown_mask_values,
                 split=split_record(train, val, val_fraction=d.val_fraction, seed=d.split_seed,
                                    by_group=d.split_by_group, val_groups=d.val_groups))
        folder.write_state(state)

    if t.lr_find and not resumed:
        from landseg.training.lr_finder import find_lr

        result = find_lr(model, train_ds, config, run_dir)
        state["lr_found"] = float(result["suggestion"])
        folder.write_state(state)
        log.info(f"lr finder suggests {result['suggestion']:.3g}; training with it")
    base_lr = float(state.get("lr_found") or config.optimizer.lr)

    nan_guard = cbs.NaNGuard()
    lr_cb = cbs.LearningRateController(config.schedule, base_lr, steps, t.epochs, state)
    per_class = cbs.PerClassIoU(miou, classmap)
    tb = cbs.TensorBoardLogger(tb_dir, classmap, preview)
    ckpt = cbs.RunCheckpoint(run_dir, state, nan_guard, patience=int(t.early_stopping_patience))
    cb_list = [nan_guard, lr_cb, per_class, tb, ckpt]
    cb_list += list(callbacks or [])

    start = int(state["epochs_completed"])
    segments = [(start, t.epochs)]
    unfreeze = t.unfreeze_at_epoch
    if t.freeze_encoder and unfreeze is not None and start < unfreeze < t.epochs:
        segments = [(start, unfreeze), (unfreeze, t.epochs)]
    for i, (first, last) in enumerate(segments):
        if i > 0:
            unfreeze_all(model)
            log.info(f"epoch {first + 1}: encoder unfrozen, {len(model.trainable_weights)} weights trainable")
            with strategy.scope():
                compile_model(model, config, classmap, miou)
        if first >= last:
            continue
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=last, initial_epoch=first, steps_per_epoch=steps,
                      validation_steps=val_steps, callbacks=cb_list, verbose=t.verbose, shuffle=False)
        except Exception as e:
            _raise_worker_lost(e, strategy, state)
            raise
        if nan_guard.failed or model.stop_training and state.get("early_stopped"):
            break

    from landseg.training.finish import finish

    finish(model, run_dir, state, classmap, val_ds, val_steps, preview, tb, diverged=nan_guard.failed is not None)
    if not nan_guard.failed:
        log.info(f"done in {time.time() - t_start:.0f} s: {run_dir}")
    if nan_guard.failed:
        best = state.get("best_val_miou")
        kept = (f"the best model so far (val mIoU {best:.4f}, epoch {state['best_epoch']}) is kept in "
                f"{folder.best}" if best is not None else "no epoch finished, so there is no best model")
        raise TrainingDiverged(f"training stopped: {nan_guard.failed}; {kept}. Try a lower optimizer.lr, "
                               "optimizer.clipnorm, or train.mixed_precision=false.")
    return run_dir




def _check_cpu_jit(t) -> None:
    """XLA on CPU cannot compile a bf16 training step (TensorFlow 2.21: "Seen floating point types of
    different precisions in %ReluGrad", experiments/results/precision_jit.md): say so before any folder
    is made, instead of an InternalError at step 1. GPUs were not measured, so they are let through."""
    if not (t.jit_compile and cfg.POLICIES[t.mixed_precision] == "mixed_bfloat16"):
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        jit = "true" if t.jit_compile is True else t.jit_compile  # "auto" turns XLA on for these models too
        raise cfg.ConfigError(f"train.jit_compile={jit} with train.mixed_precision=bfloat16 does not compile on a CPU "
                              "(XLA rejects the mixed bf16/float32 ReLU gradient); set train.jit_compile=false "
                              "(XLA is 2-9x slower on CPU anyway) or train.mixed_precision=false")


def _resume_weights(model, run_dir: Path, state: dict, strategy) -> None:
    """Weights and optimizer state of the last completed epoch; from ``best.keras`` (saying so) when
    ``last.keras`` is corrupt, e.g. cut short by a full disk."""
    from landseg.model_files import ModelFileError, keras_file_problem

    folder = RunFolder(run_dir)
    last, best = folder.last, folder.best
    problem = keras_file_problem(last)
    with strategy.scope():  # built first, so Keras restores (not skips) the optimizer variables
        model.optimizer.build(model.trainable_variables)
    if problem is None:
        model.load_weights(last)
        restore_optimizer(model, folder, strategy)
        return
    best_epoch = state.get("best_epoch")
    best_problem = keras_file_problem(best)
    if best_problem is not None or not best_epoch:
        raise ModelFileError(last, f"{problem}; {best.name} cannot replace it ({best_problem or 'no best epoch'}). "
                             f"Start the run anew (run.resume=never, or delete {run_dir})")
    log.warning(f"{last}: {problem}; resuming from {best} (epoch {best_epoch}) instead, with a fresh optimizer state; "
                f"epochs after {best_epoch} are trained again")
    model.load_weights(best)
    state["epochs_completed"] = int(best_epoch)
    state["history"] = [r for r in state.get("history", []) if r.get("epoch", 0) <= best_epoch]
    state["wait"] = 0
    state.pop("early_stopped", None)


def _raise_worker_lost(error: Exception, strategy, state: dict) -> None:
    """Under ``MultiWorkerMirroredStrategy``, a collective that failed because a peer went away (killed,
    preempted, unreachable) becomes :class:`WorkerLost`, saying how to resume; otherwise return."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if isinstance(error, (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
                          tf.errors.DeadlineExceededError)):
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WorkerLost(f"another worker of the multi-worker run stopped ({type(error).__name__}: {first}); "
                         f"{int(state.get('epochs_completed', 0))} epoch(s) are saved") from error


def _raise_out_of_memory(error: Exception, config: cfg.Config) -> None:
    """TensorFlow running out of memory in a step becomes a config error naming the keys that size it."""
    import tensorflow as tf

    if isinstance(error, tf.errors.ResourceExhaustedError):
        raise cfg.ConfigError(
            f"out of memory in a training step of model {config.model.name!r} with 'train.batch_size'="
            f"{config.train.batch_size} and 'data.crop_size'={config.data.crop_size}; lower one of them (or "
            "use train.grad_accum_steps for the same effective batch); completed epochs are saved") from None


def _raise_data_error(error: Exception, config: cfg.Config) -> None:
    """When ``error`` is TensorFlow failing on input data, raise the project's
    :class:`~landseg.data.errors.DataError` naming the file, the same one line a reader raises outside
    tf.data: the one TensorFlow's message carries, else found by decoding each file; otherwise return."""
    import tensorflow as tf

    if not isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.UnknownError)):
        return
    from landseg.data.errors import DataError, raised_inside
    from landseg.data.integrity import find_unreadable

    bad = raised_inside(str(error))
    if bad is not None:
        raise bad from None
    train, val, _, _ = prepare_data(config)
    bad = find_unreadable(list(train) + list(val), config.data.classmap,
                          unknown_to_ignore=config.data.unknown_mask_values == "ignore")
    if bad is not None:
        raise bad from None
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise DataError("(training data)", f"TensorFlow could not read an input ({first}); every file decodes on its "
                    "own, so run `landseg data check` on the dataset") from None


def _with_known_length(ds):
    """(``ds`` with its batch count asserted, that count): Keras then restarts the validation data
    every epoch instead of running it dry and warning "Your input ran out of data"."""
    import tensorflow as tf

    n = int(ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())
    return ds.apply(tf.data.experimental.assert_cardinality(n)), n
