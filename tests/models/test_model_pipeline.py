"""segformer, fcn8s and multires_unet through every stage after building: a one-step training
run, its best.keras reloaded, BatchNorm folded, ONNX / TFLite export and a GeoTIFF mapped by
``landseg.predict``. One tiny run per model (64 px crops, smallest widths), shared by the tests."""

import numpy as np
import pytest

from model_helpers import TINY, perturb_batchnorms

NEW_MODELS = ("segformer", "fcn8s", "multires_unet")
SIZE = 64


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{name: (run folder, probe batch, probabilities of the trained model on it in memory)}."""
    import keras

    from landseg.data.synthetic import ensure_synthetic_dataset
    from landseg.training import run_training

    root = tmp_path_factory.mktemp("pipeline")
    data = ensure_synthetic_dataset(root / "data", n_images=8, size=SIZE)
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)

    class Probe(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.probs = np.asarray(self.model.predict_on_batch(x))

    out = {}
    for name in NEW_MODELS:
        probe = Probe()
        run_dir = run_training({
            "run": {"name": name, "output_dir": str(root / "runs"), "tensorboard_dir": str(root / "tb")},
            "data": {"name": "synthetic", "data_dir": str(data), "crop_size": SIZE, "val_fraction": 0.25,
                     "synthetic": {"n_images": 8, "size": SIZE}},
            "model": {"name": name, "options": TINY[name]},
            "train": {"epochs": 1, "batch_size": 2, "steps_per_epoch": 1, "val_steps": 1, "num_preview": 1,
                      "verbose": 0},
        }, callbacks=[probe])
        out[name] = (run_dir, x, probe.probs)
    return out


@pytest.mark.parametrize("name", NEW_MODELS)
def test_trained_model_reloads_to_the_same_probabilities(runs, name):
    from landseg.models import load_model

    run_dir, x, trained = runs[name]
    assert (run_dir / "best.keras").is_file() and (run_dir / "model_info.json").is_file()
    loaded = np.asarray(load_model(run_dir / "best.keras").predict_on_batch(x))
    assert np.abs(loaded - trained).max() <= 1e-6


@pytest.mark.parametrize("name", NEW_MODELS)
def test_batchnorm_folds_to_the_same_probabilities(runs, name):
    from keras import layers

    from landseg.models import load_model
    from landseg.models.fold import fold_batchnorm, foldable_pairs

    run_dir, x, _ = runs[name]
    model = load_model(run_dir / "best.keras")
    bns = [l for l in model._flatten_layers() if isinstance(l, layers.BatchNormalization)]
    if name == "fcn8s":  # FCN has no BatchNorm: folding hands the model back untouched
        assert not bns and fold_batchnorm(model) is model
        return
    perturb_batchnorms(model)
    folded = fold_batchnorm(model)
    assert len(foldable_pairs(model)) >= {"segformer": 1, "multires_unet": 60}[name]
    np.testing.assert_allclose(folded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_exports_to_onnx_and_tflite_equal_to_keras(runs, name, tmp_path):
    pytest.importorskip("tf2onnx", reason="ONNX export needs the [export] extra")
    from landseg.export import TOLERANCES, export_model

    run_dir = runs[name][0]
    for fmt in ("onnx", "tflite"):
        r = export_model(run_dir / "best.keras", fmt, tmp_path / fmt, tile=SIZE, sample_size=1)
        assert r.max_abs_diff <= TOLERANCES[fmt] and r.argmax_agreement == 1.0, (fmt, r.max_abs_diff)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_maps_a_geotiff_through_predict(runs, name, tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from landseg.inference.predict import PredictorSettings, predict_folder
    from landseg.models import load_model

    run_dir = runs[name][0]
    image = (np.random.default_rng(1).random((SIZE, 2 * SIZE, 3)) * 255).astype(np.uint8)
    (tmp_path / "in").mkdir()
    transform = from_origin(500000.0, 5200000.0, 2.0, 2.0)
    with rasterio.open(tmp_path / "in" / "scene.tif", "w", driver="GTiff", width=2 * SIZE, height=SIZE, count=3,
                       dtype="uint8", crs="EPSG:32633", transform=transform) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    predict_folder([run_dir / "best.keras"], tmp_path / "in", tmp_path / "out",
                   settings=PredictorSettings(tile=SIZE, overlap=0.0))
    with rasterio.open(tmp_path / "out" / "classes" / "scene.tif") as ds:
        assert ds.crs.to_string() == "EPSG:32633" and ds.transform.almost_equals(transform)
        labels = ds.read(1)
    # two tiles side by side, no overlap: each is the model's own argmax on that part of the image
    probs = load_model(run_dir / "best.keras").predict_on_batch(
        np.stack([image[:, :SIZE], image[:, SIZE:]]).astype(np.float32) / 255.0)
    expected = np.concatenate(list(np.argmax(probs, -1)), axis=1)
    assert labels.shape == expected.shape and np.mean(labels == expected) >= 0.999
