"""DeepLabv3+ through every stage a user takes it: trained by the train command, reloaded and rebuilt
from its run artifact to the same probabilities, BatchNorm folded, exported to ONNX and TFLite equal
to Keras, and a GeoTIFF mapped in place. Tiny settings: geoembed's ResNet-18 at input_downsample 2
(ASPP at stride 16 and the low level at 4 of the image, as in the paper; its ~70 layers trace and
export in half the time of MobileNetV2's ~150), ASPP width 16, 64 px crops."""

import numpy as np
import pytest

from geo_helpers import CRS, smooth_image, write_geotiff


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from landseg.cli.train import main
    from landseg.data.synthetic import ensure_synthetic_dataset

    d = tmp_path_factory.mktemp("dlv3p")
    data = ensure_synthetic_dataset(d / "data", n_images=8, size=64)
    rc = main(["model.name=deeplabv3plus", "model.options={encoder: resnet18_geoembed, input_downsample: 2, aspp_filters: 16}",
               "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=2", "train.val_steps=1",
               "train.num_preview=1", "train.verbose=0", "data.crop_size=64", f"data.data_dir={data}",
               "data.synthetic.n_images=8", "data.synthetic.size=64", f"run.output_dir={d / 'runs'}",
               f"run.tensorboard_dir={d / 'tb'}", "run.name=dl"])
    assert rc == 0
    return d / "runs" / "dl" / "best.keras"


def test_deeplabv3plus_trains_reloads_folds_exports_and_maps_a_geotiff(trained, tmp_path):
    import keras

    from landseg.export import TOLERANCES, export_model
    from landseg.inference import ModelEntry, Predictor
    from landseg.models import build_model, load_model
    from landseg.models.fold import fold_batchnorm
    from landseg.runs import load_run

    info = load_run(trained)
    assert info.model == "deeplabv3plus" and info.size_multiple == 16
    assert info.model_options["encoder"] == "resnet18_geoembed" and info.model_options["aspp_filters"] == 16
    model = load_model(trained)
    x = smooth_image(64, 64, seed=1)[None].astype("float32") / 255.0
    x = np.concatenate([x, np.random.default_rng(2).random((1, 64, 64, 3), dtype=np.float32)])
    probs = np.asarray(model(x, training=False))
    rebuilt = build_model(info.model, 6, **info.model_options)  # the run artifact rebuilds the same network
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(rebuilt(x, training=False)), probs)

    folded = fold_batchnorm(model)
    bns = [l for l in folded.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert not bns  # every conv + BN pair folded (the image-pooling branch's BN lives inside its layer)
    np.testing.assert_allclose(np.asarray(folded(x, training=False)), probs, atol=1e-5)

    for fmt in ("onnx", "tflite"):
        r = export_model(trained, fmt, tmp_path / fmt, tile=64)
        assert r.max_abs_diff <= TOLERANCES[fmt] and r.argmax_agreement == 1.0, fmt

    from landseg.inference.windowed import predict_raster

    image = smooth_image(80, 112, bands=3, seed=3)
    transform = write_geotiff(tmp_path / "scene.tif", image)
    pred = Predictor(ModelEntry(model, size_multiple=info.size_multiple), tile=64, overlap=0.25, batch_size=2)
    res = predict_raster(pred, tmp_path / "scene.tif", tmp_path / "classes.tif", class_names=info.classmap.class_names,
                         palette=info.classmap.palette)
    import rasterio

    with rasterio.open(res.classes) as ds:
        assert ds.crs.to_string() == CRS and ds.transform.almost_equals(transform) and (ds.height, ds.width) == (80, 112)
        np.testing.assert_array_equal(ds.read(1), pred.predict_scene(image).labels)
