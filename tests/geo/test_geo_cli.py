"""landseg predict on a GeoTIFF: COG outputs in the input's place equal to the PNG path; polygons; export CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from geo_helpers import CRS, smooth_image, tiny_model, write_geotiff


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from landseg.classmaps import get_classmap
    from landseg.runs import save_run

    d = tmp_path_factory.mktemp("run")
    tiny_model(6, 3, seed=21).save(d / "best.keras")
    save_run(d, model="test_tiny", model_options={}, classmap=get_classmap("synthetic"), bands=3, size_multiple=4)
    return d / "best.keras"


def test_predict_geotiff_equals_png_path_and_vector_areas(saved_model, tmp_path):
    import rasterio
    from pyogrio.raw import read as raw_read

    from landseg.cli.predict import main

    image = smooth_image(150, 130, bands=3, seed=4)
    (tmp_path / "geo").mkdir()
    (tmp_path / "png").mkdir()
    transform = write_geotiff(tmp_path / "geo" / "scene.tif", image, pixel=0.5)
    Image.fromarray(image).save(tmp_path / "png" / "scene.png")
    common = ["--models", str(saved_model), "--tile", "64", "--no-progress"]
    gpkg = tmp_path / "polys.gpkg"
    assert main(common + ["--input", str(tmp_path / "geo"), "--output", str(tmp_path / "out_geo"), "--vector", str(gpkg)]) == 0
    assert main(common + ["--input", str(tmp_path / "png"), "--output", str(tmp_path / "out_png")]) == 0
    png = np.asarray(Image.open(tmp_path / "out_png" / "classes" / "scene.png"))
    with rasterio.open(tmp_path / "out_geo" / "classes" / "scene.tif") as ds:
        assert ds.crs.to_string() == CRS and ds.transform.almost_equals(transform) and (ds.height, ds.width) == (150, 130)
        assert ds.colormap(1)[0][:3] == (0, 0, 255) or len(ds.colormap(1)) >= 6
        assert ds.tags()["CLASS_0"] and ds.driver == "GTiff"
        geo = ds.read(1)
    np.testing.assert_array_equal(geo, png)
    assert (tmp_path / "out_geo" / "confidence" / "scene.tif").is_file()
    meta, _, _, fields = raw_read(gpkg, layer="scene")
    names, areas = fields[1], fields[2]
    summary = json.loads((tmp_path / "out_geo" / "predict_summary.json").read_text())
    counts = summary["rasters"]["scene.tif"]["pixels_per_class"]
    for name, n in counts.items():
        if n:
            assert abs(areas[names == name].sum() - n * 0.25) <= 0.01 * n * 0.25


def test_export_cli(saved_model, tmp_path, capsys):
    from landseg.cli.export import main

    assert main(["--model", str(saved_model), "--format", "tflite", "--output", str(tmp_path), "--tile", "32"]) == 0
    assert "max |exported - keras|" in capsys.readouterr().out
    info = json.loads((tmp_path / "landseg_export.json").read_text())
    assert info["check"]["max_abs_diff"] <= 1e-4 and (tmp_path / "model.tflite").is_file()
    assert main(["--model", str(saved_model), "--format", "onnx", "--output", str(tmp_path), "--tile", "30"]) == 2


@pytest.fixture(scope="module")
def uint16_run(tmp_path_factory):
    """A 4-band model whose run selects bands 1, 2, 4, 5 of 5-band uint16 rasters, and such a dataset."""
    from landseg.classmaps import get_classmap
    from landseg.data.raster import Normalisation
    from landseg.runs import RunFolder
    from landseg.runs import save_run

    d = tmp_path_factory.mktemp("run16")
    tiny_model(6, 4, seed=31).save(d / "best.keras")
    save_run(d, model="test_tiny", model_options={}, classmap=get_classmap("synthetic"), bands=4, size_multiple=4)
    Normalisation(bands=(1, 2, 4, 5), lo=(100,) * 4, hi=(9000,) * 4).save(RunFolder(d).raster_normalisation)
    data = tmp_path_factory.mktemp("data16")
    (data / "images").mkdir()
    (data / "masks").mkdir()
    for i in range(2):
        img = np.maximum(smooth_image(40, 48, bands=5, seed=40 + i, dtype=np.uint16, scale=9000), 1)
        img[:10, :12] = 0
        mask = (img[..., 0] > 4500).astype(np.uint8) * 3
        mask[-2:] = 250
        write_geotiff(data / "images" / f"r{i}.tif", img, nodata=0)
        write_geotiff(data / "masks" / f"r{i}.tif", mask, nodata=250)
    return d / "best.keras", data


def test_evaluate_and_pseudolabel_skip_raster_nodata(uint16_run, tmp_path):
    from landseg.inference.evaluate import evaluate_models
    from landseg.inference.pseudolabel import pseudolabel

    model, data = uint16_run
    res = evaluate_models([model], data_dir=data, dataset="synthetic", layout="generic", split="all",
                          output=tmp_path / "eval", settings=None)
    assert not res["failed"]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # scored pixels = all minus image nodata (10x12) minus mask nodata (2 rows), per image
    assert metrics["images"] == 2 and metrics["labelled_pixels"] == 2 * (40 * 48 - 10 * 12 - 2 * 48)
    s = pseudolabel([model], data / "images", tmp_path / "pl", threshold=0.0)
    assert not s["failed"]
    m = np.asarray(Image.open(tmp_path / "pl" / "masks" / "r0.png"))
    assert (m[:10, :12] == 255).all() and (m[10:] != 255).all()


def test_data_check_accepts_uint16_rasters_and_writes_band_stats(uint16_run, tmp_path, capsys):
    from landseg.cli.data import main
    from landseg.data.raster import Normalisation

    _, data = uint16_run
    code = main(["check", "--data-dir", str(data), "--classmap", "synthetic", "--layout", "generic",
                 "--bands", "1,2,4,5", "--band-stats", str(tmp_path / "stats.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "band statistics of 2 raster(s)" in out
    norm = Normalisation.load(tmp_path / "stats.json")
    assert norm.bands == (1, 2, 4, 5) and len(norm.lo) == 4
