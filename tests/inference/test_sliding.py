"""Sliding-window inference against whole-image prediction, TTA inversion and ensembling."""

import numpy as np
import pytest

from landseg.inference import (
    TTA_MODES,
    ModelEntry,
    Predictor,
    Transform,
    make_grid,
    ramp,
    window_1d,
)

from infer_helpers import conv_model, pointwise_model, pooled_model, random_image, whole_probs


@pytest.fixture(scope="module")
def conv():
    return conv_model(num_classes=4, layers=3, seed=1)


@pytest.fixture(scope="module")
def pointwise():
    return pointwise_model(num_classes=4, seed=2)


def test_ramps_blend_to_one():
    r = ramp(32, 8)
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)
    assert r[:8].max() == 0 and r[-8:].min() == 1
    w = window_1d(64, 32, has_prev=False, has_next=True)
    assert w[0] == 1 and w[-1] == 0  # scene border untapered, neighbour side tapered


@pytest.mark.parametrize("window, matches", [("hann", True), ("uniform", False)])
def test_tiled_equals_whole_image(conv, window, matches):
    """Receptive field radius 3 <= blend margin (32 // 4 = 8): the blended tiles must reproduce the
    whole-image prediction everywhere. Plain averaging ('uniform', no blending) lets tile-border
    zero padding through as seams, so the same comparison fails for it."""
    image = random_image(203, 171, seed=3)  # not a multiple of the tile or of 32
    ref = whole_probs(conv, image)
    pred = Predictor(conv, tile=64, overlap=0.5, batch_size=5, window=window, size_multiple=1)
    res = pred.predict_scene(image, keep_probs=True)
    assert res.probs.shape == ref.shape and res.num_tiles == len(make_grid(203, 171, 64, 0.5, 1).ys) * len(make_grid(203, 171, 64, 0.5, 1).xs)
    err = np.abs(res.probs - ref).max()
    if matches:
        assert err < 1e-5
        np.testing.assert_array_equal(res.labels, ref.argmax(-1))
        np.testing.assert_allclose(res.confidence, ref.max(-1), atol=1e-5)
    else:
        assert err > 1e-3, "the no-blend variant should show seams"


def test_streaming_matches_full_map(conv):
    """labels/confidence computed band by band equal those from the full probability map."""
    image = random_image(150, 260, seed=4)
    pred = Predictor(conv, tile=64, overlap=0.25, batch_size=3, size_multiple=1)
    a = pred.predict_scene(image, keep_probs=False)
    b = pred.predict_scene(image, keep_probs=True)
    assert a.probs is None
    np.testing.assert_array_equal(a.labels, b.probs.argmax(-1))
    np.testing.assert_allclose(a.confidence, b.probs.max(-1), rtol=1e-6)
    np.testing.assert_allclose(b.probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(37, 53), (5, 3), (1, 1), (70, 33)])
def test_odd_and_tiny_images(shape):
    """Scenes smaller than a tile and not multiples of the model's size multiple are reflect-padded
    up to the multiple, predicted, and cropped back."""
    model = pooled_model(num_classes=3, seed=5)
    h, w = shape
    image = random_image(h, w, seed=6)
    pred = Predictor(ModelEntry(model, size_multiple=4), tile=32, overlap=0.25)
    res = pred.predict_scene(image, keep_probs=True)
    assert res.labels.shape == (h, w) and res.probs.shape == (h, w, 3)
    if h <= 32 and w <= 32:  # one tile: equals the model on the reflect-padded scene
        ph, pw = -(-h // 4) * 4, -(-w // 4) * 4
        mode = "reflect" if min(h, w) > 1 else "symmetric"
        padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode=mode)
        ref = whole_probs(model, padded)[:h, :w]
        np.testing.assert_allclose(res.probs, ref, atol=1e-5)
    assert np.isfinite(res.probs).all()
    np.testing.assert_allclose(res.probs.sum(-1), 1.0, atol=1e-5)


def _tf_transform(x, k, flip):
    """Independent D4 implementation (TensorFlow image ops) for the references."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    if flip:
        x = tf.image.flip_left_right(x)
    return tf.image.rot90(x, k).numpy()


def _tf_inverse(y, k, flip):
    import tensorflow as tf

    y = tf.image.rot90(tf.convert_to_tensor(y), (4 - k) % 4)
    if flip:
        y = tf.image.flip_left_right(y)
    return y.numpy()


@pytest.mark.parametrize("t", TTA_MODES["d4"], ids=lambda t: t.name)
def test_each_tta_transform_is_inverted_exactly(pointwise, t):
    """A per-pixel model commutes with every flip/rotation, so prediction through any single
    transform and its inverse must equal the plain prediction on a non-symmetric scene."""
    image = random_image(40, 72, seed=7)  # non-square: rotations change the tile shape
    plain = Predictor(pointwise, tile=128, size_multiple=1).predict_scene(image, keep_probs=True).probs
    one = Predictor(pointwise, tile=128, size_multiple=1, tta=[t]).predict_scene(image, keep_probs=True).probs
    np.testing.assert_allclose(one, plain, atol=1e-6)
    if t != Transform():  # the test has power: skipping the inverse misplaces the predictions
        raw = t.forward(whole_probs(pointwise, image)[None])[0]
        assert raw.shape != plain.shape or np.abs(raw - plain).max() > 1e-2


def test_tta_average_matches_independent_reference(conv):
    """For a model that is not rotation/flip equivariant, D4 TTA = mean over transforms of
    inverse(model(transform(image))), computed here with TF's own image ops."""
    image = random_image(48, 64, seed=8)
    res = Predictor(conv, tile=128, size_multiple=1, tta="d4").predict_scene(image, keep_probs=True)
    refs = []
    for flip in (False, True):
        for k in range(4):
            y = whole_probs(conv, _tf_transform(image, k, flip))
            refs.append(_tf_inverse(y, k, flip))
    ref = np.mean(refs, axis=0)
    np.testing.assert_allclose(res.probs, ref, atol=1e-5)
    plain = whole_probs(conv, image)
    assert np.abs(plain - ref).max() > 1e-3  # the model really is not invariant


def test_ensemble_weights(conv, pointwise):
    image = random_image(70, 90, seed=9)
    pa, pb = whole_probs(conv, image), whole_probs(pointwise, image)
    res = Predictor([ModelEntry(conv, 3.0, "a", size_multiple=1), ModelEntry(pointwise, 1.0, "b", size_multiple=1)], tile=256).predict_scene(image, keep_probs=True)
    np.testing.assert_allclose(res.probs, 0.75 * pa + 0.25 * pb, atol=1e-5)
    only_b = Predictor([ModelEntry(conv, 0.0, "a", size_multiple=1), ModelEntry(pointwise, 2.0, "b", size_multiple=1)], tile=256).predict_scene(image, keep_probs=True)
    np.testing.assert_allclose(only_b.probs, pb, atol=1e-5)


def test_ensemble_refuses_different_class_counts(conv):
    other = pointwise_model(num_classes=5)
    with pytest.raises(ValueError, match="disagree on the number of classes.*4.*5"):
        Predictor([ModelEntry(conv, name="a.keras"), ModelEntry(other, name="b.keras")])
    with pytest.raises(ValueError, match="weights"):
        Predictor([ModelEntry(conv, -1.0)])


def test_histogram_matching_as_in_training(conv, pointwise):
    """A member whose run used histogram matching gets the scene matched as prepare_image does;
    a member without a reference in the same ensemble gets the plain scene."""
    from landseg.data.preprocess import prepare_image

    image = random_image(90, 75, seed=10)
    reference = np.clip(random_image(64, 64, seed=11).astype(np.int32) // 2 + 100, 0, 255).astype(np.uint8)  # other histogram
    matched = prepare_image(image, reference)
    ref = 0.5 * np.asarray(conv(matched[None]))[0] + 0.5 * whole_probs(pointwise, image)
    members = [ModelEntry(conv, name="a", hist_reference=reference, size_multiple=1), ModelEntry(pointwise, name="b", size_multiple=1)]
    res = Predictor(members, tile=64, overlap=0.5).predict_scene(image, keep_probs=True)
    np.testing.assert_allclose(res.probs, ref, atol=1e-5)
    assert np.abs(matched - image / 255.0).max() > 0.1  # the matching really changed the input
