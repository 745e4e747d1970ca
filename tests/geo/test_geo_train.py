"""A 4-band uint16 GeoTIFF dataset with nodata trains end to end, and its model maps a 4-band scene."""

import json

import numpy as np
import pytest

from geo_helpers import smooth_image, write_geotiff


def _scene(seed, size=64):
    img = np.maximum(smooth_image(size, size, bands=5, seed=seed, dtype=np.uint16, scale=12000), 1)
    img[: size // 4, : size // 4] = 0  # nodata in every band
    mask = (img[..., 0] > 6000).astype(np.uint8) + 2 * (img[..., 3] > 7000).astype(np.uint8)  # classes 0..3
    mask[-3:] = 250  # unlabelled rows: mask nodata
    return img, mask


@pytest.fixture(scope="module")
def geo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("geodata")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(6):
        img, mask = _scene(i)
        write_geotiff(root / "images" / f"t{i}.tif", img, nodata=0)
        write_geotiff(root / "masks" / f"t{i}.tif", mask, nodata=250)
    return root


@pytest.mark.slow
def test_train_on_uint16_geotiffs_then_predict(geo_folder, tmp_path):
    import rasterio

    from landseg.data.raster import run_normalisation
    from landseg.inference.windowed import predict_raster
    from landseg.inference import Predictor, load_entry
    from landseg.runs import load_run
    from landseg.training import run_training

    config = {
        "run": {"name": "geo", "output_dir": str(tmp_path / "runs"), "tensorboard_dir": str(tmp_path / "tb")},
        "data": {"name": "loveda", "classmap": "synthetic", "layout": "generic", "data_dir": str(geo_folder),
                 "bands": [1, 2, 4, 5], "crop_size": 32, "val_fraction": 0.34},
        "model": {"name": "cse_unet", "options": {"base_width": 4}},
        "train": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 1, "num_preview": 1, "verbose": 0},
    }
    run_dir = run_training(config)
    norm = json.loads((run_dir / "raster_normalisation.json").read_text())
    assert norm["bands"] == [1, 2, 4, 5] and len(norm["lo"]) == 4 and norm["lo"][0] > 1  # stats skip nodata 0
    run = load_run(run_dir / "best.keras")
    assert run.bands == 4 and run_normalisation(run).bands == (1, 2, 4, 5)
    import csv

    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss", "val_loss", "val_miou"))

    img, _ = _scene(99, size=80)
    write_geotiff(tmp_path / "scene.tif", img, nodata=0)
    entry = load_entry(run_dir / "best.keras")
    pred = Predictor(entry, tile=64, overlap=0.25)
    res = predict_raster(pred, tmp_path / "scene.tif", tmp_path / "scene_classes.tif",
                         class_names=run.classmap.class_names, palette=run.classmap.palette, norm=run_normalisation(run))
    with rasterio.open(res.classes) as ds:
        out = ds.read(1)
    assert (out[:20, :20] == 255).all() and out[20:].max() < 6
