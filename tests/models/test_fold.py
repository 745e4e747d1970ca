"""fold_batchnorm: same outputs, no BatchNorm left where a conv could take it, the rest untouched."""

import keras
import numpy as np
from keras import layers

from landseg.models import build_model
from landseg.models.fold import FoldedBatchNorm, fold_batchnorm, foldable_pairs

from model_helpers import perturb_batchnorms


def test_lite_unet_folds_every_conv_batchnorm_and_keeps_its_outputs():
    model = build_model("lite_unet", 5, input_shape=(64, 64, 3))
    perturb_batchnorms(model)
    folded = fold_batchnorm(model)
    bns = [l for l in model.layers if isinstance(l, layers.BatchNormalization)]
    assert len(foldable_pairs(model)) == len(bns) > 40  # each follows a bias-free conv or depthwise conv
    assert not [l for l in folded.layers if isinstance(l, layers.BatchNormalization)]
    assert sum(isinstance(l, FoldedBatchNorm) for l in folded.layers) == len(bns)
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    expected = model.predict_on_batch(x)
    np.testing.assert_allclose(folded.predict_on_batch(x), expected, atol=1e-5)
    assert np.abs(expected - build_model("lite_unet", 5, input_shape=(64, 64, 3)).predict_on_batch(x)).max() > 1e-3


def test_conv_with_two_consumers_or_an_activation_is_left_alone():
    inputs = keras.Input((8, 8, 2))
    shared = layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    a = layers.BatchNormalization(name="bn_a")(shared)
    b = layers.Conv2D(4, 1, name="other")(shared)  # second consumer of "shared"
    act = layers.Conv2D(4, 3, padding="same", activation="relu", name="with_relu")(inputs)
    c = layers.BatchNormalization(name="bn_c")(act)
    plain = layers.Conv2D(4, 3, padding="same", name="plain")(inputs)
    d = layers.BatchNormalization(name="bn_d")(plain)
    model = keras.Model(inputs, layers.Concatenate()([a, b, c, d]))
    perturb_batchnorms(model)
    assert foldable_pairs(model) == {"plain": "bn_d"}
    folded = fold_batchnorm(model)
    assert isinstance(folded.get_layer("bn_d"), FoldedBatchNorm) and folded.get_layer("plain").use_bias
    assert isinstance(folded.get_layer("bn_a"), layers.BatchNormalization)
    x = np.random.default_rng(2).random((3, 8, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(folded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


def test_models_with_nothing_to_fold_come_back_unchanged():
    model = build_model("cse_unet", 3, input_shape=(32, 32, 3), base_width=4)  # BatchNorms inside its blocks
    assert fold_batchnorm(model) is model
