"""segformer, fcn8s and multires_unet past the forward pass: a training step moves every weight,
BatchNorm folds away, the export matches Keras, and ``landseg.predict`` maps a GeoTIFF.

Tiny widths and 64 px tiles, and a subset: on 2 cores each traced graph costs 5-40 s, so the
full matrix (the training command, reload, fold, ONNX and TFLite, GeoTIFF for every model) is
``experiments/check_models.py`` (results in experiments/results/models_checks.md). Here:
folding where it has work (multires_unet) or must do nothing (fcn8s); segformer's folding runs
inside the GeoTIFF test, where ``landseg.predict`` folds the loaded model; TFLite on fcn8s, and
ONNX on the two layers an exporter broke."""

import numpy as np
import pytest

from model_helpers import NUM_CLASSES, SIZE, TINY, perturb_batchnorms

NEW_MODELS = ("segformer", "fcn8s", "multires_unet")


@pytest.mark.parametrize("name", NEW_MODELS)
def test_one_training_step_moves_every_weight(name, batch):
    import keras

    from landseg.models import build_model

    keras.utils.set_random_seed(0)  # segformer's drop path drops a whole branch per sample: with 2 samples a
    model = build_model(name, NUM_CLASSES, **TINY[name])  # block's branch is skipped in ~1 step of 100; fixed here
    y = np.random.default_rng(3).integers(0, NUM_CLASSES, (2, SIZE, SIZE))
    before = [np.array(w) for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", run_eagerly=True)
    loss = float(model.train_on_batch(batch, y))
    still = [w.path for b, w in zip(before, model.trainable_weights) if np.array_equal(b, np.array(w))]
    assert np.isfinite(loss) and not still, still[:5]


@pytest.mark.parametrize("name", ["fcn8s", "multires_unet"])
def test_batchnorm_folds_to_the_same_probabilities(name, tiny_models, batch):
    from keras import layers

    from landseg.models import build_model
    from landseg.models.fold import fold_batchnorm, foldable_pairs

    if name == "fcn8s":  # FCN has no BatchNorm: folding hands the model back untouched
        model = tiny_models[name]
        assert not [l for l in model.layers if isinstance(l, layers.BatchNormalization)]
        assert fold_batchnorm(model) is model
        return
    model = build_model(name, NUM_CLASSES, **TINY[name])
    perturb_batchnorms(model)
    folded = fold_batchnorm(model)
    assert len(foldable_pairs(model)) == 9 * 4 + 10 * 2  # every conv2d_bn: 4 per MultiRes block, 2 per Res-path step
    np.testing.assert_allclose(folded.predict_on_batch(batch), model.predict_on_batch(batch), atol=1e-5)


@pytest.fixture(scope="module")
def saved_runs(tiny_models, tmp_path_factory):
    """Each tiny model saved as a run folder's best.keras with its run artifact, as training leaves it."""
    from landseg.classmaps import get_classmap
    from landseg.models import get_model_spec
    from landseg.runs import save_run

    out = {}
    for name in ("segformer", "fcn8s"):
        d = tmp_path_factory.mktemp(name)
        tiny_models[name].save(d / "best.keras")
        save_run(d, model=name, model_options=TINY[name], classmap=get_classmap("synthetic"), bands=3,
                 size_multiple=get_model_spec(name).multiple(**TINY[name]))
        out[name] = d / "best.keras"
    return out


def test_fcn8s_exports_to_tflite_equal_to_keras(saved_runs, tmp_path):
    from landseg.export import TOLERANCES, export_model

    r = export_model(saved_runs["fcn8s"], "tflite", tmp_path, tile=SIZE, sample_size=1)
    assert r.max_abs_diff <= TOLERANCES["tflite"] and r.argmax_agreement == 1.0, r.max_abs_diff


@pytest.mark.parametrize("layer", ["mit_attention", "input_scaling"])
def test_layer_exports_to_onnx(layer, tmp_path):
    """Two layers an exporter broke. MiT's attention with one head and a sequence reduction of 8 (its
    first stage): onnxruntime's fused matmul failed on the 4-D (batch, 1 head, tokens, dim) products,
    so the layer multiplies in 3-D. The models' input scaling: keras Normalization's mean and variance
    became unfed ONNX inputs, so every model scales with a per-band Rescaling (encoders.InputNorm.layer)."""
    pytest.importorskip("tf2onnx", reason="ONNX export needs the [export] extra")
    import keras

    from landseg.export import run_onnx
    from landseg.models.encoders import InputNorm
    from landseg.models.segformer import MiTAttention

    inputs = keras.Input((None, None, 32))
    if layer == "mit_attention":
        outputs = MiTAttention(32, 1, 8)(inputs)
    else:
        scaling = InputNorm.mean_std(np.linspace(0.1, 0.6, 3), np.linspace(0.2, 0.3, 3), "test").layer(32)
        outputs = keras.layers.Conv2D(4, 1)(scaling(inputs))
    model = keras.Model(inputs, outputs)
    model.export(str(tmp_path / "m.onnx"), format="onnx", verbose=False,
                 input_signature=[keras.InputSpec(shape=(None, 16, 16, 32), dtype="float32")])
    x = np.random.default_rng(4).random((2, 16, 16, 32), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(str(tmp_path / "m.onnx"), x), model.predict_on_batch(x), rtol=1e-5, atol=1e-5)


def test_no_model_scales_its_input_with_keras_normalization(tiny_models):
    from keras import layers

    for name, model in tiny_models.items():
        assert not [l.name for l in model._flatten_layers() if type(l) is layers.Normalization], name


def test_predict_maps_a_geotiff(saved_runs, tiny_models, tmp_path):
    """segformer (loaded, BatchNorm folded by the predictor): two 64 px tiles side by side, no
    overlap, so each output pixel is the model's own argmax there."""
    import rasterio
    from rasterio.transform import from_origin

    from landseg.inference.predict import PredictorSettings, predict_folder

    image = (np.random.default_rng(1).random((SIZE, 2 * SIZE, 3)) * 255).astype(np.uint8)
    (tmp_path / "in").mkdir()
    transform = from_origin(500000.0, 5200000.0, 2.0, 2.0)
    with rasterio.open(tmp_path / "in" / "scene.tif", "w", driver="GTiff", width=2 * SIZE, height=SIZE, count=3,
                       dtype="uint8", crs="EPSG:32633", transform=transform) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    predict_folder([saved_runs["segformer"]], tmp_path / "in", tmp_path / "out", settings=PredictorSettings(tile=SIZE, overlap=0.0))
    with rasterio.open(tmp_path / "out" / "classes" / "scene.tif") as ds:
        assert ds.crs.to_string() == "EPSG:32633" and ds.transform.almost_equals(transform)
        labels = ds.read(1)
    tiles = np.stack([image[:, :SIZE], image[:, SIZE:]]).astype(np.float32) / 255.0
    expected = np.concatenate(list(np.argmax(tiny_models["segformer"].predict_on_batch(tiles), -1)), axis=1)
    assert labels.shape == expected.shape and np.mean(labels == expected) >= 0.999
