"""Metrics against scikit-learn on random and real masks; absent-class policies; streaming metric."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, jaccard_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from landseg import metrics as M
from landseg.classmaps import get_classmap

IGNORE = 255


def _random_pair(seed, shape=(4, 24, 20), c=6, absent=(4,), pred_only=(5,)):
    """Truth with ignored pixels, class 4 absent from both, class 5 only ever predicted."""
    rng = np.random.default_rng(seed)
    present = [k for k in range(c) if k not in absent and k not in pred_only]
    t = rng.choice(present, shape)
    p = np.where(rng.random(shape) < 0.6, t, rng.choice(present + list(pred_only), shape))
    t[rng.random(shape) < 0.2] = IGNORE
    return t, p


def _check_against_sklearn(t, p, c):
    keep = t != IGNORE
    tk, pk = t[keep], p[keep]
    labels = list(range(c))
    cm = M.confusion_matrix(t, p, c, ignore_index=IGNORE)
    np.testing.assert_array_equal(cm, sk_confusion_matrix(tk, pk, labels=labels))
    present = (cm.sum(0) + cm.sum(1)) > 0
    iou, f1 = M.iou_per_class(cm), M.f1_per_class(cm)
    assert np.isnan(iou[~present]).all() and np.isnan(f1[~present]).all()
    np.testing.assert_allclose(iou[present], jaccard_score(tk, pk, labels=labels, average=None, zero_division=0)[present],
                               atol=1e-12)
    np.testing.assert_allclose(f1[present], f1_score(tk, pk, labels=labels, average=None, zero_division=0)[present],
                               atol=1e-12)
    assert M.mean_iou(cm) == pytest.approx(jaccard_score(tk, pk, average="macro"), abs=1e-12)
    assert M.mean_iou(cm, absent="exclude") == M.mean_iou(cm)
    assert M.mean_iou(cm, absent="zero") == pytest.approx(
        jaccard_score(tk, pk, labels=labels, average="macro", zero_division=0), abs=1e-12)
    assert M.mean_iou(cm, absent="one") == pytest.approx(
        jaccard_score(tk, pk, labels=labels, average="macro", zero_division=1), abs=1e-12)
    assert M.mean_f1(cm) == pytest.approx(f1_score(tk, pk, average="macro"), abs=1e-12)
    assert M.pixel_accuracy(cm) == pytest.approx(accuracy_score(tk, pk), abs=1e-12)
    # frequency-weighted IoU = IoU weighted by true-pixel share = sklearn's support-weighted average
    assert M.frequency_weighted_iou(cm) == pytest.approx(jaccard_score(tk, pk, average="weighted"), abs=1e-12)
    return cm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_masks_match_sklearn(seed):
    t, p = _random_pair(seed)
    cm = _check_against_sklearn(t, p, 6)
    assert cm[4].sum() == cm[:, 4].sum() == 0 and cm[5].sum() == 0 < cm[:, 5].sum()
    # probabilities are argmax-ed
    probs = np.eye(6, dtype=np.float32)[p] * 0.7 + 0.05
    np.testing.assert_array_equal(M.confusion_matrix(t, probs, 6, IGNORE), cm)


def _read_mask(path, classmap):
    return get_classmap(classmap).decode_mask(np.asarray(Image.open(path)), source=path)


def _perturbed(t, seed, shift=(9, -5), fraction=0.03):
    """A plausible prediction: the truth shifted, with a few pixels relabelled among present classes."""
    rng = np.random.default_rng(seed)
    p = np.roll(t, shift, axis=(0, 1)).astype(np.int64)
    classes = np.unique(t[t != IGNORE])
    noise = rng.random(t.shape) < fraction
    p[noise] = rng.choice(classes, noise.sum())
    return np.where(p == IGNORE, classes[0], p)  # a model never predicts "no label"


def test_real_masks_match_sklearn(shared_data):
    deepglobe = _read_mask(shared_data / "deepglobe" / "train" / "104113_mask.png", "deepglobe")[::4, ::4]
    potsdam = _read_mask(next((shared_data / "potsdam" / "ann_dir").glob("*.png")), "potsdam")
    for t, seed in ((deepglobe, 0), (potsdam, 1)):
        assert (t == IGNORE).any()  # both carry unlabelled pixels
        cm = _check_against_sklearn(t, _perturbed(t, seed), 6)
        if t is deepglobe:  # forest and water are absent from this tile and from its prediction
            assert np.isnan(M.iou_per_class(cm)[[3, 4]]).all()
            assert M.mean_iou(cm, "zero") < M.mean_iou(cm) < M.mean_iou(cm, "one")


def test_absent_class_policies_explicitly():
    cm = np.array([[8, 2, 0], [2, 8, 0], [0, 0, 0]])  # class 2 absent from target and prediction
    iou = 8 / 12
    assert M.iou_per_class(cm)[:2] == pytest.approx([iou, iou]) and np.isnan(M.iou_per_class(cm)[2])
    assert M.mean_iou(cm, "exclude") == pytest.approx(iou)
    assert M.mean_iou(cm, "zero") == pytest.approx(2 * iou / 3)
    assert M.mean_iou(cm, "one") == pytest.approx((2 * iou + 1) / 3)
    predicted_only = np.array([[8, 2, 1], [2, 8, 0], [0, 0, 0]])  # class 2 predicted once, never true: IoU 0, counted
    assert M.mean_iou(predicted_only, "exclude") == pytest.approx((8 / 13 + 8 / 12 + 0) / 3)
    with pytest.raises(ValueError, match="absent-class policy 'ignore'.*exclude"):
        M.mean_iou(cm, absent="ignore")
    assert np.isnan(M.mean_iou(np.zeros((3, 3)), "exclude")) and M.mean_iou(np.zeros((3, 3)), "one") == 1.0
    s = M.summarize(cm, ["a", "b", "c"], absent="zero")
    assert s["absent_policy"] == "zero" and "IoU 0" in s["absent_policy_description"]
    assert s["mean_iou"] == pytest.approx(2 * iou / 3)
    assert s["per_class"][2] == {"name": "c", "index": 2, "iou": None, "f1": None, "true_pixels": 0,
                                 "predicted_pixels": 0, "absent": True}
    json.dumps(s, allow_nan=False)  # JSON-ready: no NaN
    md = M.summary_markdown(s, title="val")
    assert "| c (absent) | – | – | 0 | 0 |" in md and "policy `zero`" in md


def test_confusion_matrix_input_errors():
    with pytest.raises(ValueError, match=r"y_true holds values outside 0..2 \(ignore_index is None\): \[255\]"):
        M.confusion_matrix(np.array([0, 1, 255]), np.array([0, 1, 2]), 3)
    with pytest.raises(ValueError, match="y_pred holds values outside"):
        M.confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3, IGNORE)
    with pytest.raises(ValueError, match="pixels"):
        M.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)


# ---------------------------------------------------------------------- streaming Keras metrics
@pytest.mark.parametrize("absent", list(M.ABSENT_POLICIES))
def test_streaming_metric_equals_one_shot(absent):
    t, p = _random_pair(3, shape=(6, 16, 12))
    probs = np.random.default_rng(4).random((6, 16, 12, 6)).astype("float32")
    probs[np.arange(6)[:, None, None], np.arange(16)[None, :, None], np.arange(12)[None, None, :], p] += 1.0
    metric = M.ConfusionMatrixMetric(6, ignore_index=IGNORE, absent=absent)
    per_class = M.class_iou_metrics([f"class {k}" for k in range(6)], IGNORE)
    for start in (0, 2, 3):  # uneven batches; (B, H, W, 1) targets
        stop = {0: 2, 2: 3, 3: 6}[start]
        metric.update_state(t[start:stop, ..., None], probs[start:stop])
        for m in per_class:
            m.update_state(t[start:stop], probs[start:stop])
    cm = M.confusion_matrix(t, p, 6, IGNORE)
    np.testing.assert_array_equal(metric.confusion_matrix(), cm)
    assert float(metric.result()) == pytest.approx(M.mean_iou(cm, absent), abs=1e-6)
    np.testing.assert_allclose([float(m.result()) for m in per_class], M.iou_per_class(cm), atol=1e-6)
    assert per_class[1].name == "iou_class_1"
    assert metric.summary([str(k) for k in range(6)])["absent_policy"] == absent
    metric.reset_state()
    assert metric.confusion_matrix().sum() == 0


def test_streaming_metric_sample_weight_and_config():
    t, p = _random_pair(5, shape=(3, 8, 8))
    metric = M.ConfusionMatrixMetric(6, IGNORE)
    metric.update_state(t, p, sample_weight=np.array([1.0, 0.0, 1.0]))  # indices as predictions, image 1 weighted out
    np.testing.assert_array_equal(metric.confusion_matrix(), M.confusion_matrix(t[[0, 2]], p[[0, 2]], 6, IGNORE))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert again.get_config() == metric.get_config() and again.absent == "exclude" and again.ignore_index == IGNORE
    with pytest.raises(ValueError, match="absent-class policy"):
        M.ConfusionMatrixMetric(3, absent="skip")


def test_metric_in_compiled_xla_model_matches_numpy():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, activation="softmax")(inp))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE),
                  metrics=[M.ConfusionMatrixMetric(4, IGNORE, name="miou")] + M.class_iou_metrics(list("abcd"), IGNORE),
                  jit_compile=True)
    rng = np.random.default_rng(0)
    x = rng.random((6, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, (6, 8, 8))
    y[:, 0] = IGNORE
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    cm = M.confusion_matrix(y, model.predict(x, verbose=0), 4, IGNORE)
    assert logs["miou"] == pytest.approx(M.mean_iou(cm), abs=1e-6)
    np.testing.assert_allclose([logs[f"iou_{k}"] for k in "abcd"], M.iou_per_class(cm), atol=1e-6)


_DISTRIBUTED = textwrap.dedent("""
    import json, os, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from landseg import metrics as M
    from landseg.losses import get_loss
    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, (8, 8, 8)); y[:, :2] = 255
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inp = keras.Input((8, 8, 3))
        model = keras.Model(inp, keras.layers.Conv2D(4, 1, activation="softmax")(inp))
        metric = M.ConfusionMatrixMetric(4, 255, name="miou")
        model.compile(loss=get_loss("partial_ce", 4, 255), metrics=[metric], jit_compile=False)
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    cm = [m for m in model.metrics if isinstance(m, M.ConfusionMatrixMetric)]
    cm = cm or [s for m in model.metrics for s in getattr(m, "metrics", []) if isinstance(s, M.ConfusionMatrixMetric)]
    # per-replica batches of 2 images with equal labelled counts: the mean of replica losses is the global loss
    json.dump({"replicas": strategy.num_replicas_in_sync, "logs": logs, "cm": cm[0].confusion_matrix().tolist(),
               "expected_cm": M.confusion_matrix(y, pred, 4, 255).tolist(),
               "expected_loss": float(get_loss("partial_ce", 4, 255)(y, pred))}, sys.stdout)
""")


@pytest.mark.slow
def test_metric_and_loss_under_mirrored_strategy():
    """Two replicas (logical CPUs, in a fresh process): counts summed, loss not scaled twice."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _DISTRIBUTED], capture_output=True, text=True, cwd=root, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["cm"] == out["expected_cm"]
    assert out["logs"]["miou"] == pytest.approx(M.mean_iou(np.array(out["expected_cm"])), abs=1e-6)
    assert out["logs"]["loss"] == pytest.approx(out["expected_loss"], rel=1e-5)
