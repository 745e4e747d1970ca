"""Windowed raster prediction equals the in-memory path; GIS outputs keep CRS/transform; polygons match pixels."""


import numpy as np
import pytest

from landseg.inference.windowed import predict_array_streamed, predict_raster
from landseg.inference.raster_outputs import read_class_names

from geo_helpers import CRS, smooth_image, tiny_model, write_geotiff

NAMES = ("water", "field", "forest")
PALETTE = ((0, 0, 255), (255, 255, 0), (0, 128, 0))


def _predictor(model, **kw):
    from landseg.inference import ModelEntry, Predictor
    return Predictor(ModelEntry(model, size_multiple=4), **{"tile": 32, "overlap": 0.25, "batch_size": 3, **kw})


@pytest.fixture(scope="module")
def model():
    return tiny_model(3, 3, seed=5)


@pytest.mark.parametrize("shape", [(70, 90), (20, 90), (90, 13), (1, 40)])
def test_streamed_equals_in_memory(model, shape):
    image = smooth_image(*shape, bands=3, seed=7)
    pred = _predictor(model)
    whole = pred.predict_scene(image)
    labels, conf = predict_array_streamed(pred, image)
    np.testing.assert_array_equal(labels, whole.labels)
    np.testing.assert_array_equal(conf, whole.confidence)


def test_streamed_equals_in_memory_with_tta_and_hist_reference(model):
    from landseg.inference import ModelEntry, Predictor
    image = smooth_image(75, 66, bands=3, seed=8)
    ref = smooth_image(40, 40, bands=3, seed=9) // 2 + 60
    from landseg.data.histogram import image_histogram

    entry = ModelEntry(model, size_multiple=4, hist_reference=image_histogram(ref))
    pred = Predictor(entry, tile=32, overlap=0.3, batch_size=4, tta="flips")
    whole = pred.predict_scene(image)
    labels, conf = predict_array_streamed(pred, image)
    np.testing.assert_array_equal(labels, whole.labels)
    np.testing.assert_allclose(conf, whole.confidence, atol=1e-6)


def test_geotiff_prediction_keeps_place_and_marks_nodata(model, tmp_path):
    import rasterio

    image = smooth_image(70, 90, bands=3, seed=10)
    image[:6, :10] = 0
    src = tmp_path / "scene.tif"
    transform = write_geotiff(src, image, nodata=0)
    pred = _predictor(model)
    res = predict_raster(pred, src, tmp_path / "out" / "scene_classes.tif", class_names=NAMES, palette=PALETTE,
                         confidence_path=tmp_path / "out" / "scene_confidence.tif")
    whole = pred.predict_scene(image)
    with rasterio.open(res.classes) as ds:
        assert ds.crs.to_string() == CRS and ds.transform.almost_equals(transform)
        assert (ds.width, ds.height, ds.count, ds.dtypes[0], ds.nodata) == (90, 70, 1, "uint8", 255)
        cmap = ds.colormap(1)
        assert [cmap[i][:3] for i in range(3)] == list(PALETTE)
        assert ds.profile["tiled"] and ds.compression.name.lower() == "deflate"
        assert ds.tags()["CLASS_1"] == "field"
        out = ds.read(1)
    assert read_class_names(res.classes) == list(NAMES)
    invalid = np.all(image == 0, axis=-1)
    assert (out[invalid] == 255).all()
    np.testing.assert_array_equal(out[~invalid], whole.labels[~invalid])
    assert res.counts.sum() + res.nodata_pixels == 70 * 90
    np.testing.assert_array_equal(res.counts, np.bincount(out[~invalid], minlength=3))
    with rasterio.open(res.confidence) as ds:
        conf = ds.read(1)
        assert ds.nodata == 0 and ds.crs.to_string() == CRS
    assert (conf[invalid] == 0).all()
    np.testing.assert_array_equal(conf[~invalid], np.clip(np.rint(whole.confidence * 255), 1, 255).astype(np.uint8)[~invalid])
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_four_band_uint16_scene_with_band_selection(tmp_path):
    from landseg.data.raster import Normalisation, read_raster

    data = np.maximum(smooth_image(50, 60, bands=5, seed=11, dtype=np.uint16, scale=4000), 1)
    src = tmp_path / "ms.tif"
    write_geotiff(src, data, nodata=0)
    norm = Normalisation(bands=(1, 2, 3, 5), lo=(100,) * 4, hi=(3900,) * 4)
    model = tiny_model(3, 4, seed=12)
    pred = _predictor(model)
    res = predict_raster(pred, src, tmp_path / "c.tif", class_names=NAMES, palette=PALETTE, norm=norm)
    img, _ = read_raster(src, norm)
    import rasterio

    with rasterio.open(res.classes) as ds:
        np.testing.assert_array_equal(ds.read(1), pred.predict_scene(img).labels)


def test_vector_areas_match_pixel_counts(tmp_path):
    import rasterio
    from pyogrio.raw import read as raw_read

    from landseg.inference.vector import vectorise
    from landseg.inference.raster_outputs import open_class_output

    rng = np.random.default_rng(0)
    labels = np.repeat(np.repeat(rng.integers(0, 3, (12, 15)), 5, 0), 5, 1).astype(np.uint8)  # blocky regions
    labels[:7, :9] = 255
    tr = rasterio.transform.from_origin(300000.0, 4000000.0, 2.0, 2.0)
    p = tmp_path / "c.tif"
    with open_class_output(p, width=75, height=60, crs=CRS, transform=tr, class_names=NAMES, palette=PALETTE) as out:
        out.write_rows(0, labels[:30])
        out.write_rows(30, labels[30:])
    for simplify, tol in ((0.0, 0.0), (1.0, 0.01)):
        gpkg = tmp_path / f"c{simplify}.gpkg"
        s = vectorise(p, gpkg, simplify=simplify)
        meta, _, geoms, fields = raw_read(gpkg)
        assert meta["crs"].endswith("32633") and list(meta["fields"]) == ["class_id", "class_name", "area", "pixels"]
        names, areas = fields[1], fields[2]
        for c, name in enumerate(NAMES):
            want = (labels == c).sum() * 4.0
            got = areas[names == name].sum()
            assert abs(got - want) <= tol * want, (name, got, want)
            assert s.pixels_per_class[name] == (labels == c).sum()
    s = vectorise(p, tmp_path / "c.geojson", block_rows=16)
    assert sum(s.pixels_per_class.values()) == (labels != 255).sum()
