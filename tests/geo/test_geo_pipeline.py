"""GeoTIFF datasets in the tf.data pipeline: band selection, stretch, image and mask nodata -> no label."""

import numpy as np
import pytest

from landseg.data.io import read_mask
from landseg.data.layouts import Sample
from landseg.data.raster import Normalisation, band_statistics, read_raster

from geo_helpers import smooth_image, write_geotiff


@pytest.fixture(scope="module")
def geo_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("geo")
    samples = []
    for i in range(2):
        img = np.maximum(smooth_image(48, 40, bands=5, seed=i, dtype=np.uint16, scale=9000), 1)
        img[:8, :8] = 0  # image nodata
        mask = (img[..., 0] > 4500).astype(np.uint8) + (img[..., 1] > 6000).astype(np.uint8)  # classes 0..2 of 6
        mask[-4:, -5:] = 200  # mask nodata
        write_geotiff(d / f"s{i}.tif", img, nodata=0)
        write_geotiff(d / f"s{i}_mask.tif", mask, nodata=200)
        samples.append(Sample(str(d / f"s{i}.tif"), str(d / f"s{i}_mask.tif")))
    return samples


def test_mask_raster_nodata_is_ignore(geo_dataset):
    m = read_mask(geo_dataset[0].mask, "synthetic", decoded=True)
    assert (m[-4:, -5:] == 255).all() and m.max() == 255 and set(np.unique(m[:-4])) <= {0, 1, 2}


def test_pipeline_reads_geotiffs_and_ignores_nodata(geo_dataset):
    from landseg.data.pipeline import build_dataset

    samples = [Sample(s.image, s.mask, decoded=True) for s in geo_dataset]
    norm = band_statistics([s.image for s in samples], bands=(1, 2, 4, 5))
    ds = build_dataset(samples, "synthetic", training=False, crop_size=(48, 40), batch_size=2, bands=4, raster_norm=norm)
    images, masks = next(iter(ds))
    images, masks = images.numpy(), masks.numpy()
    for k, s in enumerate(samples):
        img, valid = read_raster(s.image, norm)
        np.testing.assert_allclose(images[k], img.astype(np.float32) / 255, atol=1e-7)
        want = read_mask(s.mask, "synthetic", decoded=True).astype(np.int32)
        want[~valid] = 255
        np.testing.assert_array_equal(masks[k], want)
        assert (masks[k][:8, :8] == 255).all()
    # training crops come out too, with the selected band count
    tr = build_dataset(samples, "synthetic", training=True, crop_size=32, batch_size=2, bands=4, raster_norm=norm)
    x, y = next(iter(tr))
    assert x.shape == (2, 32, 32, 4) and y.shape == (2, 32, 32)


def test_pipeline_refuses_wrong_band_count(geo_dataset):
    from landseg.data.errors import DataError
    from landseg.data.pipeline import build_dataset

    with pytest.raises(DataError, match="expected 3"):
        build_dataset(geo_dataset, "synthetic", training=False, crop_size=32, batch_size=2, bands=3,
                      raster_norm=Normalisation(bands=(1, 2, 3, 4), lo=(0,) * 4, hi=(9000,) * 4))
