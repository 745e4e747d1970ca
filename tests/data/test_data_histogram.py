"""Histogram matching (TF and numpy) against scikit-image on real DeepGlobe pairs."""

import numpy as np
import pytest
from skimage.exposure import match_histograms as sk_match

from landseg.data.histogram import (compute_reference, image_histogram, load_reference, match_histograms_np,
                                    save_reference)
from landseg.data.io import read_image
from landseg.data.preprocess import prepare_image


@pytest.fixture(scope="module")
def deepglobe_images(shared_data):
    folder = shared_data / "deepglobe" / "train"
    # crops of four scenes with very different content (water, city, forest, fields)
    names = ["19627", "104113", "3484", "172307"]
    return [read_image(folder / f"{n}_sat.jpg")[300:812, 1000:1400] for n in names]


def test_tf_matches_scikit_image_on_real_pairs(deepglobe_images):
    import landseg.data

    imgs = deepglobe_images
    for src, ref in [(imgs[0], imgs[1]), (imgs[2], imgs[3]), (imgs[1], imgs[0][::2, ::2])]:
        expected = sk_match(src, ref, channel_axis=-1)
        got = landseg.data.match_histograms(src, ref).numpy()
        assert got.dtype == np.uint8 and got.shape == src.shape
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        # the numpy twin (prediction) gives the same
        np.testing.assert_array_equal(match_histograms_np(src, ref), got)


def test_full_scene_takes_the_compiled_path(shared_data, monkeypatch):
    """Scenes over XLA_MIN_PIXELS use the XLA-compiled lookup; it must agree too (and with the plain path)."""
    from landseg.data.histogram import XLA_MIN_PIXELS, match_histograms

    folder = shared_data / "deepglobe" / "train"
    src, ref = read_image(folder / "855_sat.jpg")[:1100, :1000], read_image(folder / "2774_sat.jpg")[::4, ::4]
    assert src.shape[0] * src.shape[1] >= XLA_MIN_PIXELS
    expected = sk_match(src, ref, channel_axis=-1)
    got = match_histograms(src, ref).numpy()
    assert np.abs(got.astype(int) - expected).max() <= 1
    monkeypatch.setenv("LANDSEG_NO_XLA", "1")
    np.testing.assert_array_equal(match_histograms(src, ref).numpy(), got)


def test_sparse_reference_levels(deepglobe_images):
    from landseg.data.histogram import match_histograms

    src = deepglobe_images[0]
    ref = (deepglobe_images[2] // 32 * 32 + 5).astype(np.uint8)  # only 8 occupied grey levels per band
    expected = sk_match(src, ref, channel_axis=-1)
    assert np.abs(match_histograms(src, ref).numpy().astype(int) - expected).max() <= 1


def test_inside_tf_data(deepglobe_images):
    import tensorflow as tf

    from landseg.data.histogram import match_histograms

    ref_hist = image_histogram(deepglobe_images[1])
    ds = tf.data.Dataset.from_tensor_slices(np.stack([deepglobe_images[0], deepglobe_images[2]]))
    out = list(ds.map(lambda im: match_histograms(im, ref_hist)).as_numpy_iterator())
    for src, got in zip([deepglobe_images[0], deepglobe_images[2]], out):
        expected = sk_match(src, deepglobe_images[1], channel_axis=-1)
        assert np.abs(got.astype(int) - expected).max() <= 1


def test_saved_mean_reference(tmp_path, shared_data, deepglobe_images):
    from PIL import Image

    paths = []
    for i, im in enumerate(deepglobe_images[:3]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im[: 100 + 50 * i]).save(paths[-1])  # different sizes weigh the same
    ref = compute_reference(paths)
    manual = np.mean([np.stack([np.bincount(im[: 100 + 50 * i, :, c].ravel(), minlength=256) / im[: 100 + 50 * i, :, c].size
                                for c in range(3)]) for i, im in enumerate(deepglobe_images[:3])], axis=0)
    np.testing.assert_allclose(ref, manual)
    save_reference(tmp_path / "hist_reference.npy", ref)
    loaded = load_reference(tmp_path / "hist_reference.npy")
    np.testing.assert_array_equal(loaded, ref)
    # prediction-time preprocessing with the saved file equals matching + scaling
    src = deepglobe_images[3]
    x = prepare_image(src, tmp_path / "hist_reference.npy")
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x, match_histograms_np(src, ref).astype(np.float32) / 255)
    (tmp_path / "bad.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.npy"):
        load_reference(tmp_path / "bad.npy")
