"""Losses against independent references (segmentation-models, Keras) and partial-label behaviour."""

import os

os.environ.setdefault("SM_FRAMEWORK", "tf.keras")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from landseg.losses import available_losses, get_loss, loss_options  # noqa: E402

sm = pytest.importorskip("segmentation_models", reason="segmentation-models is the reference for dice/focal")

IGNORE = 255
SHAPES = [(2, 8, 8, 3), (1, 16, 12, 6), (3, 5, 7, 2)]


def _batch(shape, seed=0, ignore_fraction=0.0):
    rng = np.random.default_rng(seed)
    b, h, w, c = shape
    y = rng.integers(0, c, (b, h, w))
    if ignore_fraction:
        y[rng.random((b, h, w)) < ignore_fraction] = IGNORE
    p = rng.random(shape).astype("float32") + 0.01
    p /= p.sum(-1, keepdims=True)
    return y, p


def _onehot(y, c):
    return np.eye(c, dtype="float32")[np.where(y == IGNORE, 0, y)] * (y != IGNORE)[..., None]


def _value(loss, y, p):
    return float(loss(y, p))


# ---------------------------------------------------------------------- references, nothing ignored
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_dice_equals_segmentation_models(shape, per_image, weighted):
    y, p = _batch(shape, seed=sum(shape))
    c = shape[-1]
    w = np.random.default_rng(1).random(c) * 2 if weighted else None
    ours = get_loss("dice", c, IGNORE, per_image=per_image, class_weights=w)
    ref = sm.losses.DiceLoss(per_image=per_image, class_weights=w)
    expected = float(ref(tf.constant(_onehot(y, c)), tf.constant(p)))
    assert _value(ours, y, p) == pytest.approx(expected, abs=1e-5)
    assert _value(ours, y[..., None], p) == pytest.approx(expected, abs=1e-5)  # (B, H, W, 1) targets


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (1.0, 0.5)])
def test_focal_equals_segmentation_models(shape, alpha, gamma):
    y, p = _batch(shape, seed=7)
    c = shape[-1]
    default = get_loss("focal", c, IGNORE) if (alpha, gamma) == (0.25, 2.0) else None
    ours = get_loss("focal", c, IGNORE, alpha=alpha, gamma=gamma)
    expected = float(sm.losses.CategoricalFocalLoss(alpha=alpha, gamma=gamma)(tf.constant(_onehot(y, c)), tf.constant(p)))
    assert _value(ours, y, p) == pytest.approx(expected, abs=1e-5)
    if default is not None:
        assert _value(default, y, p) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_partial_ce_equals_keras_crossentropy(shape, weighted):
    y, p = _batch(shape, seed=3)
    c = shape[-1]
    w = np.random.default_rng(2).random(c) + 0.5 if weighted else None
    sample_weight = w[y] if weighted else None
    expected = float(keras.losses.CategoricalCrossentropy()(_onehot(y, c), p, sample_weight=sample_weight))
    assert _value(get_loss("partial_ce", c, IGNORE, class_weights=w), y, p) == pytest.approx(expected, abs=1e-5)
    # focal modulation = Keras' categorical focal cross-entropy with alpha 1
    expected_f = float(keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0)(_onehot(y, c), p,
                                                                                       sample_weight=sample_weight))
    assert _value(get_loss("partial_ce", c, IGNORE, gamma=2.0, class_weights=w), y, p) == pytest.approx(expected_f, abs=1e-5)
    # logits
    logits = np.log(p) + 0.3
    expected_l = float(keras.losses.CategoricalCrossentropy(from_logits=True)(_onehot(y, c), logits, sample_weight=sample_weight))
    assert _value(get_loss("ce", c, IGNORE, from_logits=True, class_weights=w), y, logits) == pytest.approx(expected_l, abs=1e-5)


def test_combinations_equal_sums_and_segmentation_models():
    y, p = _batch((2, 8, 8, 4), seed=11, ignore_fraction=0.3)
    c = 4
    parts = {n: _value(get_loss(n, c, IGNORE), y, p) for n in ("partial_ce", "focal", "dice")}
    assert _value(get_loss("dice+focal", c, IGNORE), y, p) == pytest.approx(parts["dice"] + parts["focal"], abs=1e-6)
    assert _value(get_loss("ce+dice", c, IGNORE, weights=[0.3, 2.0]), y, p) == pytest.approx(
        0.3 * parts["partial_ce"] + 2.0 * parts["dice"], abs=1e-6)
    # nothing ignored: the report's segmentation-models loss, dice_loss + 1 * focal_loss
    y, p = _batch((2, 8, 8, 4), seed=12)
    ref = sm.losses.DiceLoss() + (1 * sm.losses.CategoricalFocalLoss())
    expected = float(ref(tf.constant(_onehot(y, c)), tf.constant(p)))
    assert _value(get_loss("dice+focal", c, IGNORE), y, p) == pytest.approx(expected, abs=1e-5)
    # per-part options
    w = [1.0, 2.0, 0.5, 1.0]
    combined = get_loss("dice+focal", c, IGNORE, class_weights=w, focal={"gamma": 1.0})
    assert _value(combined, y, p) == pytest.approx(
        _value(get_loss("dice", c, IGNORE, class_weights=w), y, p)
        + _value(get_loss("focal", c, IGNORE, class_weights=w, gamma=1.0), y, p), abs=1e-6)


# ---------------------------------------------------------------------- partial labels
def _labelled_only(y, p):
    """The labelled pixels alone, as one (1, n, 1, C) image: an independent way to ignore."""
    keep = y != IGNORE
    return y[keep].reshape(1, -1, 1), p[keep].reshape(1, -1, 1, p.shape[-1])


@pytest.mark.parametrize("name", ["partial_ce", "focal", "dice"])
def test_ignored_pixels_equal_dropping_them(name):
    y, p = _batch((2, 10, 9, 5), seed=5, ignore_fraction=0.4)
    c = 5
    loss = get_loss(name, c, IGNORE, class_weights=[1, 2, 1, 0.5, 1])
    y_kept, p_kept = _labelled_only(y, p)
    assert _value(loss, y, p) == pytest.approx(_value(loss, y_kept, p_kept), abs=1e-6)
    if name == "dice":
        ref = sm.losses.DiceLoss(class_weights=np.array([1, 2, 1, 0.5, 1]))
        assert _value(loss, y, p) == pytest.approx(float(ref(tf.constant(_onehot(y_kept, c)), tf.constant(p_kept))), abs=1e-5)


@pytest.mark.parametrize("name", available_losses())
@pytest.mark.parametrize("from_logits", [False, True])
def test_prediction_at_ignored_pixel_changes_neither_loss_nor_gradient(name, from_logits):
    y, p = _batch((2, 8, 8, 4), seed=9, ignore_fraction=0.35)
    x = np.log(p) if from_logits else p
    ignored = y == IGNORE
    x2 = x.copy()
    rng = np.random.default_rng(10)
    x2[ignored] = rng.random((ignored.sum(), 4)).astype("float32") * (5 if from_logits else 1)
    x2[np.argwhere(ignored)[0][0], np.argwhere(ignored)[0][1], np.argwhere(ignored)[0][2]] = np.nan  # even NaN
    options = {"per_image": True} if name == "dice" else {}
    loss = get_loss(name, 4, IGNORE, from_logits=from_logits, **options)

    def value_and_grad(pred):
        v = tf.Variable(pred)
        with tf.GradientTape() as tape:
            out = loss(y, v)
        return float(out), tape.gradient(out, v).numpy()

    l1, g1 = value_and_grad(x)
    l2, g2 = value_and_grad(x2)
    assert np.isfinite(l1) and l1 > 0
    assert l1 == pytest.approx(l2, abs=1e-7)
    assert np.isfinite(g1).all() and np.isfinite(g2).all()
    np.testing.assert_allclose(g1, g2, atol=1e-8)
    assert np.all(g1[ignored] == 0) and np.abs(g1[~ignored]).max() > 0


@pytest.mark.parametrize("name", available_losses())
@pytest.mark.parametrize("from_logits", [False, True])
def test_all_ignored_gives_zero_loss_and_zero_gradient(name, from_logits):
    _, p = _batch((2, 6, 6, 3), seed=4)
    y = np.full((2, 6, 6), IGNORE)
    loss = get_loss(name, 3, IGNORE, from_logits=from_logits, class_weights=[2.0, 1.0, 0.5])
    v = tf.Variable(np.log(p) if from_logits else p)
    with tf.GradientTape() as tape:
        out = loss(y, v)
    grad = tape.gradient(out, v).numpy()
    assert float(out) == 0.0
    assert np.isfinite(grad).all() and np.all(grad == 0)


# ---------------------------------------------------------------------- API, serialisation, training
def test_names_options_and_errors():
    assert available_losses() == ["partial_ce", "focal", "dice", "dice+focal", "ce+dice"]
    assert set(loss_options("dice+focal")) == {"dice", "focal"}
    with pytest.raises(ValueError, match="unknown loss 'jaccard'"):
        get_loss("jaccard", 3)
    with pytest.raises(ValueError, match="unknown option"):
        get_loss("dice", 3, IGNORE, gamma=2.0)
    with pytest.raises(ValueError, match="class_weights has 2 values for 3 classes"):
        get_loss("partial_ce", 3, IGNORE, class_weights=[1, 2])
    with pytest.raises(ValueError, match="weights"):
        get_loss("ce+dice", 3, IGNORE, weights=[1.0])


@pytest.mark.parametrize("name", available_losses())
def test_serialisation_round_trip(name):
    y, p = _batch((1, 6, 6, 3), seed=2, ignore_fraction=0.2)
    loss = get_loss(name, 3, IGNORE, class_weights=[1.0, 3.0, 0.5])
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert _value(again, y, p) == pytest.approx(_value(loss, y, p), abs=1e-7)


def test_compiled_model_trains_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(inp))
    model.compile("adam", loss=get_loss("dice+focal", 3, IGNORE, class_weights=[1.0, 2.0, 1.0]))
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, (4, 8, 8))
    y[:, :2] = IGNORE
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    expected = float(model.loss(y, model.predict(x, verbose=0)))
    assert model.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx(expected, abs=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------------- other Keras backends
_OTHER_BACKEND = """
import sys
import numpy as np
import keras
from landseg.losses import get_loss
from landseg.metrics import ConfusionMatrixMetric

backend = keras.backend.backend()
data = dict(np.load(sys.argv[1]))
y, p = data["y"], data["p"]


def value_and_grad(loss, y, p):
    if backend == "jax":
        import jax
        value, grad = jax.value_and_grad(lambda q: loss(y, q))(p)
        return float(value), np.asarray(grad)
    import torch
    q = torch.tensor(p, requires_grad=True)
    value = loss(torch.tensor(y), q)
    value.backward()
    return float(value.detach()), q.grad.numpy()


out = {}
for name in ("partial_ce", "focal", "dice", "dice+focal", "ce+dice"):
    loss = get_loss(name, p.shape[-1], 255, class_weights=[1.0, 2.0, 0.5, 1.0])
    out[name + "_value"], out[name + "_grad"] = value_and_grad(loss, y, p)
    out[name + "_empty_value"], out[name + "_empty_grad"] = value_and_grad(loss, np.full_like(y, 255), p)
metric = ConfusionMatrixMetric(p.shape[-1], 255)
metric.update_state(y[:1], p[:1])
metric.update_state(y[1:], p[1:])
out["cm"] = metric.confusion_matrix()
out["miou"] = float(metric.result())
np.savez(sys.argv[2], **{k: np.asarray(v) for k, v in out.items()})
"""


@pytest.mark.slow
def test_same_losses_and_metric_on_other_backends(tmp_path):
    """keras.ops only: JAX and PyTorch give the TensorFlow values and gradients (fresh processes, run together)."""
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    from landseg.metrics import ConfusionMatrixMetric

    backends = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]
    if not backends:
        pytest.skip("neither jax nor torch is installed")
    y, p = _batch((2, 6, 7, 4), seed=21, ignore_fraction=0.3)
    np.savez(tmp_path / "in.npz", y=y, p=p)
    procs = {}
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
        procs[backend] = subprocess.Popen(
            [sys.executable, "-c", _OTHER_BACKEND, str(tmp_path / "in.npz"), str(tmp_path / f"{backend}.npz")],
            cwd=Path(__file__).resolve().parents[1], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for backend, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{backend}: {err[-3000:]}"
        results[backend] = np.load(tmp_path / f"{backend}.npz")
    for name in available_losses():
        loss = get_loss(name, 4, IGNORE, class_weights=[1.0, 2.0, 0.5, 1.0])
        v = tf.Variable(p)
        with tf.GradientTape() as tape:
            value = loss(y, v)
        grad = tape.gradient(value, v).numpy()
        for backend, out in results.items():
            assert float(out[name + "_value"]) == pytest.approx(float(value), abs=1e-5), (backend, name)
            np.testing.assert_allclose(out[name + "_grad"], grad, atol=1e-5, err_msg=f"{backend} {name}")
            assert float(out[name + "_empty_value"]) == 0.0 and np.all(out[name + "_empty_grad"] == 0), (backend, name)
    metric = ConfusionMatrixMetric(4, IGNORE)
    metric.update_state(y, p)
    for backend, out in results.items():
        np.testing.assert_array_equal(out["cm"], metric.confusion_matrix(), err_msg=backend)
        assert float(out["miou"]) == pytest.approx(float(metric.result()), abs=1e-6), backend
