"""Reading GeoTIFFs: band selection, per-band statistics and stretch, nodata as invalid."""

import numpy as np
import pytest

from landseg.data.errors import DataError
from landseg.data.raster import Normalisation, band_statistics, raster_info, read_class_raster, read_raster

from geo_helpers import smooth_image, write_geotiff


def test_uint16_four_bands_with_nodata(tmp_path):
    data = np.maximum(smooth_image(40, 50, bands=4, seed=1, dtype=np.uint16, scale=10000), 1)
    data[:5, :7] = 0  # nodata corner
    p = tmp_path / "s.tif"
    write_geotiff(p, data, nodata=0)
    info = raster_info(p)
    assert (info.height, info.width, info.count, info.georeferenced) == (40, 50, 4, True)
    with pytest.raises(DataError, match="band statistics"):
        read_raster(p)  # 16-bit values need a stretch
    norm = band_statistics([p], percentiles=(2, 98))
    valid_px = data[5:].reshape(-1, 4)  # rows below the corner are all valid
    ref = data.reshape(-1, 4)[np.any(data.reshape(-1, 4) != 0, axis=1)].astype(np.float64)
    np.testing.assert_allclose(norm.lo, np.percentile(ref, 2, axis=0))
    np.testing.assert_allclose(norm.hi, np.percentile(ref, 98, axis=0))
    img, valid = read_raster(p, norm)
    assert img.dtype == np.uint8 and img.shape == (40, 50, 4)
    assert not valid[:5, :7].any() and valid[5:].all() and valid[:, 7:].all()
    expect = np.rint(np.clip((data.astype(np.float32) - np.float32(norm.lo)) * (np.float32(255) / (np.float32(norm.hi) - np.float32(norm.lo))), 0, 255))
    np.testing.assert_array_equal(img, expect.astype(np.uint8))
    assert valid_px.shape[1] == 4


def test_band_selection_and_round_trip(tmp_path):
    data = smooth_image(20, 30, bands=4, seed=2)
    p = tmp_path / "s.tif"
    write_geotiff(p, data)
    img, valid = read_raster(p, Normalisation(bands=(3, 1)))
    np.testing.assert_array_equal(img, data[:, :, [2, 0]])
    assert valid.all()
    with pytest.raises(DataError, match="do not exist"):
        read_raster(p, Normalisation(bands=(5,)))
    norm = Normalisation(bands=(1, 2), lo=(0, 10), hi=(100, 200))
    assert Normalisation.from_dict(norm.to_dict()) == norm
    with pytest.raises(ValueError, match="hi > lo"):
        Normalisation(lo=(5,), hi=(5,))


def test_float_nan_is_nodata(tmp_path):
    data = smooth_image(10, 12, bands=2, seed=3).astype(np.float32) / 255
    data[2, 3, 1] = np.nan
    p = tmp_path / "f.tif"
    write_geotiff(p, data)
    img, valid = read_raster(p, Normalisation(lo=(0, 0), hi=(1, 1)))
    assert not valid[2, 3] and valid.sum() == 119


def test_class_mask_raster(tmp_path):
    mask = np.random.default_rng(0).integers(0, 4, (16, 16)).astype(np.uint8)
    mask[0, :4] = 9
    p = tmp_path / "m.tif"
    write_geotiff(p, mask, nodata=9)
    out = read_class_raster(p)
    assert (out[0, :4] == 255).all()
    np.testing.assert_array_equal(out[1:], mask[1:])
    write_geotiff(tmp_path / "two.tif", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(DataError, match="1 band"):
        read_class_raster(tmp_path / "two.tif")
