"""Run in a fresh process (logical devices must be set before TF starts): a two-replica
MirroredStrategy step on CPU must match a single-device step on the same batch."""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from landseg.classmaps import ClassMap  # noqa: E402
from landseg.config import from_dict  # noqa: E402
from landseg.training.setup import make_loss, make_miou_metric, make_optimizer, make_strategy, metric_confusion  # noqa: E402

CONFIG = from_dict({"loss": {"name": "partial_ce", "options": {}}}, validate_names=False)
CLASSMAP = ClassMap("three", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)), "index", index_values=(0, 1, 2))
OPT = from_dict({"optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0}},
                validate_names=False).optimizer


def tiny(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    return keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(x))


rng = np.random.default_rng(0)
x = rng.random((8, 8, 8, 3)).astype("float32")
y = rng.integers(0, 3, (8, 8, 8)).astype("int32")
init = tiny().get_weights()
results = {}
for name in ("default", "mirrored"):
    strategy = make_strategy(name)
    with strategy.scope():
        model = tiny()
        model.set_weights(init)
        metric = make_miou_metric(CLASSMAP)
        model.compile(optimizer=make_optimizer(OPT), loss=make_loss(CONFIG, CLASSMAP), metrics=[metric])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # global batch 8 -> 4 per replica
    hist = model.fit(ds, epochs=1, verbose=0)
    ev = model.evaluate(ds, verbose=0, return_dict=True)
    results[name] = {"replicas": strategy.num_replicas_in_sync, "loss": hist.history["loss"][0],
                     "weights": [w.tolist() for w in model.get_weights()], "eval": ev,
                     "cm": metric_confusion(metric).tolist()}
json.dump(results, sys.stdout)
