"""``python -m landseg.train [--config FILE.yaml] [--strategy S] [key.sub=value ...]``: train a model.

With no arguments it trains a small CSE-UNet on the built-in synthetic dataset. A run writes
into ``<run.output_dir>/<run name>/`` (config, model_info, best/last checkpoints, history,
plots, per-class IoU) and ``<run.tensorboard_dir>/<run name>/``; started again with the same
command after a crash, it continues from its last completed epoch.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from landseg import config as cfg  # noqa: E402
from landseg import runs  # noqa: E402


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the best model so far is kept."""


# ---------------------------------------------------------------------- pieces
def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus if len(cpus) > 1 else None)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise cfg.ConfigError(f"unknown strategy {name!r}; valid: {', '.join(cfg.STRATEGIES)}")


def is_chief() -> bool:
    """In multi-worker training only the chief (or worker 0 without a chief) writes the run folder."""
    import json

    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    if not task:
        return True
    has_chief = "chief" in tf_config.get("cluster", {})
    return task.get("type") == "chief" or (not has_chief and task.get("type") == "worker" and task.get("index", 0) == 0)


def make_optimizer(opt: dict, grad_accum_steps: int = 1):
    """Adam / AdamW / SGD; ``grad_accum_steps > 1`` averages that many batches' gradients per update
    (Keras 3's ``gradient_accumulation_steps``: the same update as one batch that many times larger)."""
    import keras

    common = {"learning_rate": float(opt["lr"])}
    if opt.get("clipnorm"):
        common["clipnorm"] = float(opt["clipnorm"])
    if grad_accum_steps and grad_accum_steps > 1:
        common["gradient_accumulation_steps"] = int(grad_accum_steps)
    wd = float(opt.get("weight_decay") or 0.0)
    if opt["name"] == "adam":
        return keras.optimizers.Adam(weight_decay=wd or None, **common)
    if opt["name"] == "adamw":
        return keras.optimizers.AdamW(weight_decay=wd, **common)
    if opt["name"] == "sgd":
        return keras.optimizers.SGD(momentum=float(opt["momentum"]), weight_decay=wd or None, **common)
    raise cfg.ConfigError(f"unknown optimizer {opt['name']!r}; valid: {', '.join(cfg.OPTIMIZERS)}")


def make_loss(config: dict, num_classes: int):
    from landseg.losses import get_loss

    return get_loss(config["loss"]["name"], num_classes, ignore_index=config["loss"]["ignore_index"],
                    **config["loss"]["options"])


def make_miou_metric(num_classes: int, ignore_index: int):
    from landseg.metrics import ConfusionMatrixMetric

    return ConfusionMatrixMetric(num_classes=num_classes, ignore_index=ignore_index, name="miou")


def metric_confusion(metric):
    """The confusion matrix a ConfusionMatrixMetric holds now (numpy, rows = truth)."""
    import keras
    import numpy as np

    if callable(getattr(metric, "confusion_matrix", None)):
        return np.asarray(metric.confusion_matrix(), np.int64)
    for v in metric.variables:
        if len(v.shape) == 2:
            return np.asarray(keras.ops.convert_to_numpy(v), np.int64)
    raise AttributeError("ConfusionMatrixMetric exposes no confusion matrix")


def unfreeze_all(model) -> None:
    """Make every layer trainable (Keras 3 propagates ``trainable`` to nested layers)."""
    model.trainable = True
    for layer in model._flatten_layers(include_self=False):
        layer.trainable = True


def per_class_table(classmap, iou, cm) -> tuple[dict, str]:
    import numpy as np

    from landseg.metrics import mean_iou

    support = np.asarray(cm).sum(axis=1)
    rows = []
    for i, name in enumerate(classmap.class_names):
        v = float(iou[i]) if np.isfinite(iou[i]) else None
        rows.append({"class": name, "iou": v, "pixels": int(support[i])})
    miou = float(mean_iou(cm))
    data = {"mean_iou": miou, "classes": rows}
    md = ["| class | IoU | val pixels |", "|---|---|---|"]
    for r in rows:
        shown = "n/a (absent)" if r["iou"] is None else f"{r['iou']:.4f}"
        md.append(f"| {r['class']} | {shown} | {r['pixels']} |")
    md.append(f"| **mean** | **{miou:.4f}** | {int(support.sum())} |")
    return data, "\n".join(md) + "\n"


# ---------------------------------------------------------------------- data
def prepare_data(config: dict, run_dir: Path | None):
    """Train/val samples, class map and histogram reference (saved into the run folder)."""
    from landseg.classmaps import get_classmap
    from landseg.data.layouts import discover, split_samples

    d = config["data"]
    data_dir = d["data_dir"]
    if d["name"] == "synthetic":
        from landseg.data.synthetic import ensure_synthetic_dataset

        data_dir = str(ensure_synthetic_dataset(data_dir, **_synthetic_kwargs(d["synthetic"])))
    classmap = get_classmap(d["classmap"])
    files = discover(data_dir, d["layout"])
    if not files.labelled:
        raise ValueError(f"{data_dir}: no labelled images found with layout {d['layout']!r}")
    train, val = split_samples(files.labelled, val_fraction=d["val_fraction"], seed=d["split_seed"],
                               by_group=d["split_by_group"])
    for folder in d["pseudo_label_dirs"]:
        from landseg.pseudolabel import load_pseudo_labelled

        train = list(train) + list(load_pseudo_labelled(folder))
    hist_ref, hist_file = None, None
    if d["hist_reference"] != "none":
        from landseg.data import histogram

        if d["hist_reference"] == "train_mean":
            hist_ref = histogram.compute_reference([s.image for s in train], bands=d["bands"])
        else:
            hist_ref = histogram.load_reference(d["hist_reference"])
        if run_dir is not None:
            hist_file = "hist_reference.npy"
            histogram.save_reference(run_dir / hist_file, hist_ref)
    return train, val, classmap, hist_ref, hist_file


def _synthetic_kwargs(opts: dict) -> dict:
    import inspect

    from landseg.data.synthetic import ensure_synthetic_dataset

    params = inspect.signature(ensure_synthetic_dataset).parameters
    mapping = {"n_images": ("n_images", "num_images"), "size": ("size", "image_size")}
    out = {}
    for key, names in mapping.items():
        for n in names:
            if n in params:
                out[n] = opts[key]
                break
    return out


def build_datasets(config: dict, train, val, classmap, hist_ref, global_batch: int):
    import inspect

    from landseg.data.pipeline import build_dataset

    d = config["data"]
    params = inspect.signature(build_dataset).parameters
    extra = {}
    if "unknown_to_ignore" in params:
        extra["unknown_to_ignore"] = d["unknown_mask_values"] == "ignore"
    elif d["unknown_mask_values"] == "ignore":
        raise cfg.ConfigError("data.unknown_mask_values=ignore is not supported by this landseg.data.pipeline")
    common = dict(crop_size=d["crop_size"], batch_size=global_batch, hist_reference=hist_ref, bands=d["bands"],
                  seed=config["run"]["seed"], **extra)
    if "cache" in params:
        common["cache"] = d["cache"]
    train_ds = build_dataset(train, classmap, training=True, flips=d["flips"], rotate90=d["rotate90"],
                             rare_class_crops=d["rare_class_crops"], **common)
    val_ds = build_dataset(val, classmap, training=False, flips=False, rotate90=False, **common)
    return train_ds, val_ds


def _cardinality(ds) -> int | None:
    import tensorflow as tf

    n = int(ds.cardinality().numpy())
    return None if n in (int(tf.data.INFINITE_CARDINALITY), int(tf.data.UNKNOWN_CARDINALITY)) else n


def preview_batch(val_ds, n: int):
    """The first ``n`` validation crops (deterministic): fixed images for the panels."""
    import numpy as np

    if n <= 0:
        return None
    xs, ys = [], []
    for x, y in val_ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
        if sum(len(a) for a in xs) >= n:
            break
    if not xs:
        return None
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


# ---------------------------------------------------------------------- training
def run_training(config: dict, callbacks=None, strategy=None) -> Path:
    """Train from a (partial) config dict merged over the defaults; returns the run folder.

    ``callbacks``: extra Keras callbacks (used by tests and self-training). Raises
    :class:`TrainingDiverged` on a NaN/inf loss (best model kept), :class:`runs.OutputError` when
    the outputs cannot be written, :class:`landseg.config.ConfigError` on a bad config.
    """
    config = cfg.from_dict(config)
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
    import numpy as np
    import tensorflow as tf

    from landseg import callbacks as cbs

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
        print(f"resuming {run_dir} after epoch {state['epochs_completed']} of {t['epochs']}")
    else:
        state = {"epochs_completed": 0, "finished": False}
        print(f"run folder: {run_dir}")

    train, val, classmap, hist_ref, hist_file = prepare_data(config, run_dir)
    batch = int(t["batch_size"])
    train_ds, val_ds = build_datasets(config, train, val, classmap, hist_ref, batch)
    steps = t["steps_per_epoch"] or _cardinality(train_ds)
    if steps is None:
        raise cfg.ConfigError("the training dataset has no known length; set train.steps_per_epoch")
    accum = int(t["grad_accum_steps"])
    if accum > 1 and steps % accum:
        steps = max(accum, steps - steps % accum)  # whole updates only: checkpoints never hold half-accumulated grads
    train_ds = train_ds.repeat()
    val_steps = t["val_steps"] or _cardinality(val_ds)
    print(f"{len(train)} training / {len(val)} validation images, {classmap.num_classes} classes, "
          f"{steps} steps/epoch of batch {batch}" + (f" x {accum} accumulated" if accum > 1 else "")
          + (f" over {replicas} replicas" if replicas > 1 else ""))
    preview = preview_batch(val_ds, int(t["num_preview"]))
    bands = int(train_ds.element_spec[0].shape[-1])

    from landseg.models import build_model, get_model_spec

    spec = get_model_spec(config["model"]["name"])
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
            print(f"initialised from {t['init_from']}")
        if frozen:
            print(f"encoder frozen: {len(model.trainable_weights)} of {len(model.weights)} weights trainable")
        miou = make_miou_metric(classmap.num_classes, config["loss"]["ignore_index"])
        _compile(model, config, classmap, miou)
    runs.check_free_space(run_dir, runs.estimate_output_bytes(model.count_params(), t["epochs"]))

    if resumed:
        model.load_weights(run_dir / "last.keras")
        _restore_optimizer(model, run_dir / "last_optimizer.npz", strategy)
    else:
        runs.write_config(run_dir, config)
        runs.write_model_info(run_dir, model=config["model"]["name"], model_options=config["model"]["options"],
                              classmap=classmap, bands=bands, size_multiple=spec.multiple(**config["model"]["options"]),
                              hist_reference=hist_file)
        runs.write_state(run_dir, state)

    if t["lr_find"] and not resumed:
        from landseg.lr_find import find_lr

        result = find_lr(model, train_ds, config, run_dir)
        state["lr_found"] = float(result["suggestion"])
        runs.write_state(run_dir, state)
        print(f"lr finder suggests {result['suggestion']:.3g}; training with it")
    base_lr = float(state.get("lr_found") or config["optimizer"]["lr"])

    nan_guard = cbs.NaNGuard()
    lr_cb = cbs.LearningRateController(config["schedule"], base_lr, steps, t["epochs"], state)
    per_class = cbs.PerClassIoU(miou, classmap)
    tb = cbs.TensorBoardLogger(tb_dir, classmap, preview)
    ckpt = cbs.RunCheckpoint(run_dir, state, nan_guard, patience=int(t["early_stopping_patience"]))
    cb_list = [nan_guard, lr_cb, per_class, tb, ckpt]
    kill = cbs.kill_hook_from_env()
    if kill is not None:
        cb_list.append(kill)
    cb_list += list(callbacks or [])

    start = int(state["epochs_completed"])
    segments = [(start, t["epochs"])]
    unfreeze = t["unfreeze_at_epoch"]
    if t["freeze_encoder"] and unfreeze is not None and start < unfreeze < t["epochs"]:
        segments = [(start, unfreeze), (unfreeze, t["epochs"])]
    for i, (first, last) in enumerate(segments):
        if i > 0:
            unfreeze_all(model)
            print(f"epoch {first + 1}: encoder unfrozen, {len(model.trainable_weights)} weights trainable")
            with strategy.scope():
                _compile(model, config, classmap, miou)
        if first >= last:
            continue
        model.fit(train_ds, validation_data=val_ds, epochs=last, initial_epoch=first, steps_per_epoch=steps,
                  validation_steps=val_steps, callbacks=cb_list, verbose=t["verbose"], shuffle=False)
        if nan_guard.failed or model.stop_training and state.get("early_stopped"):
            break

    _finish(model, run_dir, state, config, classmap, val_ds, val_steps, preview, tb, nan_guard, chief)
    print(f"done in {time.time() - t_start:.0f} s: {run_dir}")
    if nan_guard.failed:
        best = state.get("best_val_miou")
        kept = (f"the best model so far (val mIoU {best:.4f}, epoch {state['best_epoch']}) is kept in "
                f"{run_dir / 'best.keras'}" if best is not None else "no epoch finished, so there is no best model")
        raise TrainingDiverged(f"training stopped: {nan_guard.failed}; {kept}. Try a lower optimizer.lr, "
                               "optimizer.clipnorm, or train.mixed_precision=false.")
    return run_dir


def _compile(model, config, classmap, miou) -> None:
    t = config["train"]
    model.compile(optimizer=make_optimizer(config["optimizer"], t["grad_accum_steps"]),
                  loss=make_loss(config, classmap.num_classes), metrics=[miou],
                  jit_compile=t["jit_compile"])


def _restore_optimizer(model, path: Path, strategy) -> None:
    from landseg.callbacks import load_optimizer_state

    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    load_optimizer_state(model.optimizer, path)


def _finish(model, run_dir, state, config, classmap, val_ds, val_steps, preview, tb, nan_guard, chief) -> None:
    """Final reports from the best model: per-class IoU, confusion matrix, prediction panels."""
    import numpy as np

    from landseg import plots
    from landseg.io_utils import write_json, write_text

    best_path = run_dir / "best.keras"
    if not best_path.is_file():
        return
    model.load_weights(best_path)
    cm = confusion_on(model, val_ds, val_steps, classmap.num_classes, config["loss"]["ignore_index"])
    from landseg.metrics import iou_per_class

    iou = np.asarray(iou_per_class(cm), np.float64)
    data, md = per_class_table(classmap, iou, cm)
    data["best_epoch"] = state.get("best_epoch")
    write_json(run_dir / "per_class_iou.json", data)
    write_text(run_dir / "per_class_iou.md", f"# Per-class IoU on validation (best epoch {state.get('best_epoch')})\n\n" + md)
    plots.plot_confusion_matrix(cm, classmap.class_names, run_dir / "confusion_matrix.png", normalize=True)
    step = int(state.get("epochs_completed", 0))
    tb.write_image("confusion_matrix", plots.confusion_matrix_array(cm, classmap.class_names, normalize=True), step - 1)
    if preview is not None:
        images, targets = preview
        preds = np.argmax(model.predict(images, verbose=0, batch_size=len(images)), axis=-1)
        plots.plot_panels(images, targets, preds, classmap, run_dir / "predictions.png")
    if os.path.isfile(run_dir / "history.csv"):
        plots.plot_learning_curves(run_dir / "history.csv", run_dir / "learning_curves.png", metric="miou")
    if not nan_guard.failed:
        state["finished"] = True
    state["val_miou_best_model"] = data["mean_iou"]
    from landseg import runs as _runs

    _runs.write_state(run_dir, state)


def confusion_on(model, dataset, steps, num_classes: int, ignore_index: int):
    """Confusion matrix of ``model`` over ``dataset`` (rows = truth), ignoring ``ignore_index``."""
    import numpy as np

    from landseg.metrics import confusion_matrix

    total = np.zeros((num_classes, num_classes), np.int64)
    for i, (x, y) in enumerate(dataset):
        if steps is not None and i >= steps:
            break
        pred = np.argmax(model.predict_on_batch(x), axis=-1)
        total += np.asarray(confusion_matrix(y.numpy(), pred, num_classes, ignore_index=ignore_index), np.int64)
    return total


# ---------------------------------------------------------------------- command line
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        from importlib import resources

        print("keys and defaults (landseg/configs/default.yaml):\n")
        print(resources.files("landseg").joinpath("configs/default.yaml").read_text())
        return 0
    config = cfg.config_from_cli(argv)
    if config is None:
        return 2
    try:
        run_training(config)
    except (runs.OutputError, cfg.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
