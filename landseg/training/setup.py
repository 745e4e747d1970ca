"""Training set-up: strategy, optimizer, loss, metric, data and compilation of one run.

Everything here is a pure function of the resolved config (and the class map), so the LR
finder and the training share one way of building a run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from landseg import config as cfg


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
        return _multi_worker_strategy()
    raise cfg.ConfigError(f"unknown strategy {name!r}; valid: {', '.join(cfg.STRATEGIES)}")


def _multi_worker_strategy():
    """``MultiWorkerMirroredStrategy`` (configured by ``TF_CONFIG``) whose ``reduce`` accepts a nested
    structure of per-replica values, as ``MirroredStrategy``'s does.

    Why: Keras 3's TensorFlow trainer, before the first step of ``fit``, reduces the first *distributed
    batch* - an ``(x, y)`` tuple of ``PerReplica`` values - with one ``strategy.reduce("MEAN", batch)`` call
    (``TensorFlowTrainer._maybe_symbolic_build``) to learn its shapes. With more than one worker,
    ``CollectiveAllReduceExtended._reduce_to`` hands that tuple to the cross-device ops, which try to
    convert it into a single tensor: "Attempt to convert a value (PerReplica:{...}) with an unsupported
    type ... to a Tensor", on every worker, at the first step. Reducing each element of the structure
    on its own is what the call means, and is what a single worker (or ``MirroredStrategy``) does.

    Second, in every train / test step Keras reduces the step's logs (loss and metric results, scalars
    on each replica) with ``strategy.reduce("MEAN", v, axis=0)`` when there are several workers
    (``keras.src.backend.tensorflow.trainer.reduce_per_replica``); ``axis=0`` on a rank-0 value fails
    ("Invalid reduction dimension 0 for input with 0 dimensions"). For a scalar, the mean over the
    replicas is ``axis=None`` - what Keras's own single-worker branch computes - so that is used.
    """
    import tensorflow as tf

    def rank(v):
        if isinstance(v, tf.distribute.DistributedValues):
            v = v.values[0]
        shape = getattr(v, "shape", None)
        return None if shape is None else shape.rank

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            if isinstance(value, (tuple, list, dict)) and not isinstance(value, tf.distribute.DistributedValues):
                return tf.nest.map_structure(lambda v: self.reduce(reduce_op, v, axis), value)
            if axis is not None and rank(value) == 0:
                axis = None
            return super().reduce(reduce_op, value, axis)

    return MultiWorkerMirroredStrategy()


def predict_local(model, images):
    """The model's probabilities for ``images`` computed in this process only.

    ``predict_on_batch`` / ``predict`` under ``MultiWorkerMirroredStrategy`` treat each worker's array as
    that worker's share and gather all workers' outputs (twice the rows with two workers), so reports
    made from them mismatch their targets. A plain call reads the (mirrored) weights locally."""
    import numpy as np
    import tensorflow as tf

    if isinstance(getattr(model, "distribute_strategy", None), tf.distribute.MultiWorkerMirroredStrategy):
        return np.asarray(model(images, training=False))
    return model.predict_on_batch(images)


def is_chief() -> bool:
    """In multi-worker training only the chief (or worker 0 without a chief) writes the run folder."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    if not task:
        return True
    has_chief = "chief" in tf_config.get("cluster", {})
    return task.get("type") == "chief" or (not has_chief and task.get("type") == "worker" and task.get("index", 0) == 0)


def make_optimizer(opt: cfg.OptimizerSection, grad_accum_steps: int = 1):
    """Adam / AdamW / SGD; ``grad_accum_steps > 1`` averages that many batches' gradients per update
    (Keras 3's ``gradient_accumulation_steps``: the same update as one batch that many times larger)."""
    import keras

    common = {"learning_rate": float(opt.lr)}
    if opt.clipnorm:
        common["clipnorm"] = float(opt.clipnorm)
    if grad_accum_steps and grad_accum_steps > 1:
        common["gradient_accumulation_steps"] = int(grad_accum_steps)
    wd = float(opt.weight_decay or 0.0)
    if opt.name == "adam":
        return keras.optimizers.Adam(weight_decay=wd or None, **common)
    if opt.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=wd, **common)
    if opt.name == "sgd":
        return keras.optimizers.SGD(momentum=float(opt.momentum), weight_decay=wd or None, **common)
    raise cfg.ConfigError(f"unknown optimizer {opt.name!r}; valid: {', '.join(cfg.OPTIMIZERS)}")


def make_loss(config: cfg.Config, classmap):
    """The configured loss; pixels labelled with the class map's ignore value do not count."""
    from landseg.losses import get_loss

    return get_loss(config.loss.name, classmap.num_classes, ignore_index=classmap.ignore_index,
                    **config.loss.options)


def make_miou_metric(classmap):
    from landseg.metrics import ConfusionMatrixMetric

    return ConfusionMatrixMetric(num_classes=classmap.num_classes, ignore_index=classmap.ignore_index, name="miou")


def metric_confusion(metric):
    """The confusion matrix a ConfusionMatrixMetric holds now (numpy, rows = truth)."""
    import numpy as np

    return np.asarray(metric.confusion_matrix(), np.int64)


def check_crop_size(config: cfg.Config) -> int:
    """The model's size multiple (stated once, by the model registry); a ``data.crop_size`` that is no
    multiple of it stops here, before any data is read. Returns the multiple."""
    from landseg.models import get_model_spec

    name, options = config.model.name, config.model.options
    multiple = int(get_model_spec(name).multiple(**options))
    crop = config.data.crop_size
    sides = list(crop) if isinstance(crop, (list, tuple)) else [crop]
    bad = [int(s) for s in sides if int(s) % multiple]
    if bad:
        lower = (bad[0] // multiple) * multiple
        fix = f"{lower} or {lower + multiple}" if lower > 0 else str(multiple)
        raise cfg.ConfigError(f"config key 'data.crop_size': {crop!r} is not a multiple of {multiple}, the size multiple "
                              f"of model {name!r} with these options (its input sides must divide by {multiple}); "
                              f"use e.g. {fix}")
    return multiple


# The least memory any model needs per pixel of a training batch: the float32 input and the per-class
# probabilities with their gradients (bands x 4 + classes x 8 bytes). Real models need several times more;
# this floor only catches values that cannot work, before any folder is made.
def step_memory_floor(config: cfg.Config, num_classes: int, bands: int) -> int:
    crop = config.data.crop_size
    pixels = int(config.train.batch_size) * int(crop) * int(crop)
    return pixels * (4 * bands + 8 * num_classes)


def check_step_memory(config: cfg.Config, num_classes: int, bands: int) -> None:
    """Stop with the keys named when one training step cannot fit in this machine's memory."""
    from landseg.data.cache_policy import usable_memory

    memory = usable_memory()
    need = step_memory_floor(config, num_classes, bands)
    if memory is not None and need > memory:
        raise cfg.ConfigError(
            f"config keys 'train.batch_size'={config.train.batch_size} and 'data.crop_size'={config.data.crop_size}: "
            f"one training step needs at least {need / 2**30:.1f} GiB, more than the {memory / 2**30:.1f} GiB this "
            "process can use; lower the batch size or the crop size")


def unfreeze_all(model) -> None:
    """Make every layer trainable (Keras 3 propagates ``trainable`` to nested layers)."""
    model.trainable = True
    for layer in model._flatten_layers(include_self=False):
        layer.trainable = True


def compile_model(model, config: cfg.Config, classmap, miou) -> None:
    t = config.train
    model.compile(optimizer=make_optimizer(config.optimizer, t.grad_accum_steps),
                  loss=make_loss(config, classmap), metrics=[miou], jit_compile=t.jit_compile)


def restore_optimizer(model, run_folder, strategy) -> None:
    """The optimizer state of the run folder's last completed epoch (:class:`landseg.runs.RunFolder`)."""
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    run_folder.load_optimizer_state(model.optimizer)


# ---------------------------------------------------------------------- a run's parts
@dataclass
class RunParts:
    """What a run is made of: its samples, class map, datasets and compiled model."""

    train: list
    val: list
    classmap: object
    hist_ref: object
    train_ds: object
    val_ds: object
    model: object
    miou: object


def assemble_run(config: cfg.Config, run_folder=None, *, strategy=None, frozen: bool = False,
                 init_from: str | None = None) -> RunParts:
    """Samples, datasets and the compiled model of a run: the one set-up of training and the LR finder.
    ``run_folder`` receives the histogram reference and raster settings; ``frozen`` builds the encoder
    frozen; ``init_from`` loads a checkpoint's weights before compiling."""
    import logging

    import tensorflow as tf

    from landseg.models import build_model

    log = logging.getLogger(__name__)
    train, val, classmap, hist_ref = prepare_data(config, run_folder)
    train_ds, val_ds = build_datasets(config, train, val, classmap, hist_ref, int(config.train.batch_size))
    bands = int(train_ds.element_spec[0].shape[-1])
    options = dict(config.model.options) | ({"freeze_encoder": True} if frozen else {})
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(config.model.name, classmap.num_classes, input_shape=(None, None, bands), **options)
        if init_from:
            model.load_weights(init_from)
            log.info(f"initialised from {init_from}")
        if frozen:
            log.info(f"encoder frozen: {len(model.trainable_weights)} of {len(model.weights)} weights trainable")
        miou = make_miou_metric(classmap)
        compile_model(model, config, classmap, miou)
    return RunParts(train, val, classmap, hist_ref, train_ds, val_ds, model, miou)


# ---------------------------------------------------------------------- data
def dataset_folder(config: cfg.Config) -> str:
    """The data folder of the config (the built-in synthetic one is written on first use)."""
    d = config.data
    if d.name != "synthetic":
        return d.data_dir
    from landseg.data.synthetic import ensure_synthetic_dataset

    return str(ensure_synthetic_dataset(d.data_dir, n_images=d.synthetic.n_images, size=d.synthetic.size))


def prepare_data(config: cfg.Config, run_folder=None):
    """Train/val samples, class map and histogram reference; the reference and the raster settings are
    saved into ``run_folder`` (a :class:`landseg.runs.RunFolder`) when given."""
    from landseg.classmaps import get_classmap
    from landseg.data.layouts import discover, split_samples
    from landseg.data.pseudo_labels import load_pseudo_labelled

    d = config.data
    data_dir = dataset_folder(config)
    classmap = get_classmap(d.classmap)
    files = discover(data_dir, d.layout)
    if not files.labelled:
        raise cfg.ConfigError(f"{data_dir}: no labelled images found with layout {d.layout!r}")
    if files.unlabelled:  # named, not silently dropped
        import logging

        names = [s.image for s in files.unlabelled]
        logging.getLogger(__name__).warning(
            f"{len(names)} image(s) without a mask are not trained on: " + ", ".join(names[:5])
            + (f" and {len(names) - 5} more" if len(names) > 5 else "") + " (landseg data check lists them all)")
    try:
        train, val = split_samples(files.labelled, val_fraction=d.val_fraction, seed=d.split_seed,
                                   by_group=d.split_by_group, val_groups=d.val_groups)
    except ValueError as e:
        raise cfg.ConfigError(str(e)) from None
    for folder in d.pseudo_label_dirs:
        train = list(train) + list(load_pseudo_labelled(folder))
    from landseg.data.bands import band_count, resolve_normalisation

    norm = resolve_normalisation(d, train)  # GeoTIFF band selection and stretch
    if run_folder is not None and norm is not None:
        norm.save(run_folder.raster_normalisation)
    hist_ref = None
    if d.hist_reference != "none":
        from landseg.data import histogram

        if d.hist_reference == "train_mean":
            hist_ref = histogram.compute_reference([s.image for s in train], bands=band_count(d.bands))
        else:
            hist_ref = histogram.load_reference(d.hist_reference)
        if run_folder is not None:
            histogram.save_reference(run_folder.hist_reference, hist_ref)
    return train, val, classmap, hist_ref


def build_datasets(config: cfg.Config, train, val, classmap, hist_ref, global_batch: int):
    from landseg.data.pipeline import build_dataset
    from landseg.data.bands import band_count, resolve_normalisation

    from landseg.data.cache_policy import resolve_cache
    from landseg.data.pipeline import scene_sizes

    d = config.data
    bands = band_count(d.bands)
    cache = resolve_cache(d.cache, scene_sizes(list(train) + list(val)), bands)  # one decision for both
    common = dict(crop_size=d.crop_size, batch_size=global_batch, hist_reference=hist_ref, bands=bands,
                  raster_norm=resolve_normalisation(d, train),
                  seed=config.run.seed, unknown_to_ignore=d.unknown_mask_values == "ignore",
                  cache=cache)
    train_ds = build_dataset(train, classmap, training=True, flips=d.flips, rotate90=d.rotate90,
                             rare_class_crops=d.rare_class_crops, color_jitter=d.color_jitter,
                             scale_jitter=d.scale_jitter, blur=d.blur, **common)
    val_ds = build_dataset(val, classmap, training=False, flips=False, rotate90=False, **common)
    return train_ds, val_ds


def cardinality(ds) -> int | None:
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
