"""landseg predict on a GeoTIFF: COG outputs in the input's place equal to the PNG path; polygons; export CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from geo_helpers import CRS, smooth_image, tiny_model, write_geotiff


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from landseg.classmaps import get_classmap
    from landseg.run_artifact import save_run

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
