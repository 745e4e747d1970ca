"""tf.data pipeline: shapes, dtypes, ranges, image/mask alignment under crops, flips and rotations."""

import numpy as np
import pytest

from data_helpers import save
from landseg.classmaps import get_classmap
from landseg.data.io import read_image, read_mask
from landseg.data.layouts import Sample, discover
from landseg.data.pipeline import build_dataset
from landseg.data.preprocess import prepare_image

CM = get_classmap("synthetic")  # index masks 0..5


def _coded_samples(tmp_path, n=3, h=70, w=90):
    """Images whose first band encodes the mask (class * 40) and other bands encode position,
    so any crop/flip/rotation that moves image and mask apart is visible."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        mask = np.repeat(np.repeat(rng.integers(0, 6, (h // 5 + 1, w // 5 + 1)), 5, 0), 5, 1)[:h, :w].astype(np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([mask * 40 + 5, (yy * 3) % 256, (xx * 2 + i) % 256], -1).astype(np.uint8)
        samples.append(Sample(save(tmp_path / "images" / f"{i}.png", image),
                              save(tmp_path / "masks" / f"{i}.png", mask)))
    return samples


def _decode_class(images):
    return np.round((images[..., 0] * 255 - 5) / 40).astype(int)


def test_training_batches_are_aligned(tmp_path):
    samples = _coded_samples(tmp_path)
    ds = build_dataset(samples, CM, training=True, crop_size=32, batch_size=4, crops_per_image=4, seed=3)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 3  # 3 scenes x 4 crops, full batches
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and y.shape == (4, 32, 32) and y.dtype == np.int32
    assert 0 <= x.min() and x.max() <= 1
    for x, y in batches:
        np.testing.assert_array_equal(_decode_class(x), y)


def test_flips_and_rotations_happen_and_stay_aligned(tmp_path):
    samples = _coded_samples(tmp_path, n=1, h=40, w=40)
    ds = build_dataset(samples, CM, training=True, crop_size=40, batch_size=1, crops_per_image=16, seed=0)
    orientations = set()
    for x, y in ds.as_numpy_iterator():
        np.testing.assert_array_equal(_decode_class(x), y)
        rows = np.round(x[0, ..., 1] * 255)  # encodes the original row (y*3)
        # which way the original rows run tells the orientation (8 possibilities)
        orientations.add((rows[0, 0] < rows[-1, 0], rows[0, 0] < rows[0, -1], rows[0, 0] == rows[0, -1]))
    assert len(orientations) >= 3


def test_epochs_differ_and_seed_repeats(tmp_path):
    samples = _coded_samples(tmp_path)
    ds = build_dataset(samples, CM, training=True, crop_size=24, batch_size=3, seed=5)
    e1, e2 = [np.concatenate([b[0] for b in ds.as_numpy_iterator()]) for _ in range(2)]
    assert not np.array_equal(e1, e2)
    again = build_dataset(samples, CM, training=True, crop_size=24, batch_size=3, seed=5)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in again.as_numpy_iterator()]), e1)


def test_validation_tiles_cover_whole_image(tmp_path):
    samples = _coded_samples(tmp_path, n=2, h=70, w=90)
    ds = build_dataset(samples, CM, training=False, crop_size=32, batch_size=5)
    xs, ys = zip(*ds.as_numpy_iterator())
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert len(x) == 2 * 3 * 3  # ceil(70/32) x ceil(90/32) tiles per image
    for k, s in enumerate(samples):
        tiles_x, tiles_y = x[9 * k: 9 * (k + 1)], y[9 * k: 9 * (k + 1)]
        full_x = tiles_x.reshape(3, 3, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(96, 96, 3)
        full_y = tiles_y.reshape(3, 3, 32, 32).transpose(0, 2, 1, 3).reshape(96, 96)
        np.testing.assert_array_equal(full_x[:70, :90], prepare_image(read_image(s.image)))
        np.testing.assert_array_equal(full_y[:70, :90], read_mask(s.mask, CM))
        assert (full_y[70:] == 255).all() and (full_y[:, 90:] == 255).all()


def test_rare_class_crops(tmp_path):
    mask = np.zeros((200, 200), np.uint8)
    mask[150:154, 20:24] = 4  # a 16-pixel building
    image = np.stack([mask * 40 + 5] * 3, -1)
    s = [Sample(save(tmp_path / "i.png", image), save(tmp_path / "m.png", mask))]

    def hits(rare):
        ds = build_dataset(s, CM, training=True, crop_size=32, batch_size=8, crops_per_image=48, seed=1,
                           rare_class_crops=rare, flips=False, rotate90=False)
        return np.mean([(y == 4).any() for _, ys in ds.as_numpy_iterator() for y in ys])

    assert hits(False) < 0.15 and hits(1.0) > 0.3  # True means half the crops: 0.5


def test_real_rgb_masks_decode_like_numpy_and_hist_reference(shared_data):
    """Dubai Tile 2: palette PNG masks, decoded by TF through the palette = numpy reader."""
    from landseg.data.histogram import image_histogram, match_histograms_np

    files = discover(shared_data / "dubai-aerial", "dubai")
    s = [x for x in files.labelled if x.group == "Tile 2"][0]
    image, mask = read_image(s.image), read_mask(s.mask, "dubai")
    ref = image_histogram(read_image(files.labelled[0].image))
    size = max(image.shape[:2])
    ds = build_dataset([s], "dubai", training=False, crop_size=size, batch_size=1, hist_reference=ref)
    (x, y), = list(ds.as_numpy_iterator())
    h, w = mask.shape
    np.testing.assert_array_equal(y[0, :h, :w], mask)
    np.testing.assert_array_equal(x[0, :h, :w], prepare_image(image, ref))
    assert not np.array_equal(x[0, :h, :w], prepare_image(image))
    np.testing.assert_array_equal(x[0, :h, :w], match_histograms_np(image, ref) / np.float32(255))


@pytest.mark.parametrize("xla", ["0", "1"])
def test_large_mask_lookup(shared_data, monkeypatch, xla):
    """A 3.7 Mpx Dubai mask (over XLA_MIN_PIXELS: the compiled, padded lookup) decodes like numpy,
    and the plain path (LANDSEG_NO_XLA=1) gives the same."""
    monkeypatch.setenv("LANDSEG_NO_XLA", "0" if xla == "1" else "1")
    folder = shared_data / "dubai-aerial" / "Tile 7"
    s = Sample(str(folder / "images" / "image_part_001.jpg"), str(folder / "masks" / "image_part_001.png"))
    mask = read_mask(s.mask, "dubai")
    h, w = mask.shape
    ds = build_dataset([s], "dubai", training=False, crop_size=(h, w), batch_size=1, cache=False)
    (x, y), = list(ds.as_numpy_iterator())
    np.testing.assert_array_equal(y[0], mask)


def test_unknown_colour_stops_with_the_file_name(tmp_path, caplog):
    import tensorflow as tf

    cm = get_classmap("dubai")
    raw = cm.encode_rgb(np.zeros((20, 20), np.uint8))
    raw[:2, :2] = 1  # near-black #010101, not in the class map
    s = [Sample(save(tmp_path / "img.png", np.zeros((20, 20, 3), np.uint8)), save(tmp_path / "bad_mask.png", raw))]
    with pytest.raises(tf.errors.OpError, match=r"bad_mask\.png: 4 pixels .*#010101"):
        list(build_dataset(s, cm, training=False, crop_size=20, batch_size=1))
    (x, y), = list(build_dataset(s, cm, training=False, crop_size=20, batch_size=1, unknown_to_ignore=True).as_numpy_iterator())
    assert (y[0, :2, :2] == 255).all() and (y[0, 2:] == 0).all()
    assert "bad_mask.png: 4 px with values not in class map 'dubai' mapped to ignore: #010101 (4 px)" in caplog.text


def test_size_mismatch_and_band_errors(tmp_path):
    from landseg.data.errors import DataError

    s = [Sample(save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8)), save(tmp_path / "a_m.png", np.zeros((20, 21), np.uint8)))]
    with pytest.raises(DataError, match=r"a_m\.png: mask is 21x20 but its image"):
        build_dataset(s, CM, training=True, crop_size=8, batch_size=1)
    s = [Sample(save(tmp_path / "g.png", np.zeros((20, 20), np.uint8)), save(tmp_path / "g_m.png", np.zeros((20, 20), np.uint8)))]
    with pytest.raises(DataError, match=r"g\.png: image has 1 band"):
        build_dataset(s, CM, training=True, crop_size=8, batch_size=1)


def test_rgba_images_and_grey_masks(shared_data):
    """dida: RGBA images lose alpha, anti-aliased grey labels threshold at 128, small scenes padded."""
    files = discover(shared_data / "dida-roofs", "dida")
    s = files.labelled[:2]
    ds = build_dataset(s, "dida", training=True, crop_size=288, batch_size=2, seed=0, flips=False, rotate90=False)
    (x, y), = list(ds.as_numpy_iterator())
    assert x.shape == (2, 288, 288, 3) and set(np.unique(y)) <= {0, 1, 255}
    assert (y == 255).sum() == 2 * (288 * 288 - 256 * 256)  # padding is ignored, nothing else


def test_color_jitter_changes_colours_not_geometry_nor_labels(tmp_path):
    """Jittered crops: masks identical to unjittered ones, images differ but stay in [0, 1] and
    keep their spatial pattern (per-crop correlation of brightness with the plain crop stays high)."""
    samples = _coded_samples(tmp_path, n=2, h=40, w=40)
    kw = dict(training=True, crop_size=40, batch_size=8, crops_per_image=4, seed=5)
    plain = list(build_dataset(samples, CM, **kw).as_numpy_iterator())
    jit = list(build_dataset(samples, CM, color_jitter=1.0, **kw).as_numpy_iterator())
    for (xp, yp), (xj, yj) in zip(plain, jit):
        np.testing.assert_array_equal(yp, yj)
        assert 0 <= xj.min() and xj.max() <= 1
        assert np.abs(xp - xj).mean() > 0.01
        for a, b in zip(xp, xj):
            assert np.corrcoef(a.mean(-1).ravel(), b.mean(-1).ravel())[0, 1] > 0.8


def test_scale_jitter_and_blur_keep_labels_and_alignment(tmp_path):
    """Scale jitter resizes image and mask together (mask by nearest neighbour, so every label is a label of
    the scene); blur softens the image only. The class coded in band 1 still matches the mask away from
    class edges, where bilinear resizing and blur mix neighbouring classes."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    samples = []
    for i in range(3):  # 16 px class blocks: wide enough to have interiors after blur and rescaling
        mask = np.repeat(np.repeat(rng.integers(0, 6, (6, 6)), 16, 0), 16, 1).astype(np.uint8)
        yy, xx = np.mgrid[0:96, 0:96]
        image = np.stack([mask * 40 + 5, (yy * 3) % 256, (xx * 2 + i) % 256], -1).astype(np.uint8)
        samples.append(Sample(save(tmp_path / "images" / f"{i}.png", image), save(tmp_path / "masks" / f"{i}.png", mask)))
    kw = dict(training=True, crop_size=32, batch_size=4, crops_per_image=8, seed=5, flips=False, rotate90=False)
    plain = np.concatenate([y for _, y in build_dataset(samples, CM, **kw).as_numpy_iterator()])
    x, y = (np.concatenate(a) for a in zip(*build_dataset(samples, CM, scale_jitter=0.5, blur=1.0, **kw)
                                           .as_numpy_iterator()))
    assert set(np.unique(y)) <= set(range(6)) and x.shape == (24, 32, 32, 3)
    interior = np.stack([ndimage.minimum_filter(m, 11) == ndimage.maximum_filter(m, 11) for m in y])
    assert interior.mean() > 0.2
    np.testing.assert_array_equal(_decode_class(x)[interior], y[interior])
    # the crops were rescaled: they are not the crops of an unjittered run
    assert not np.array_equal(y, plain)
    sharp = np.concatenate([a for a, _ in build_dataset(samples, CM, scale_jitter=0.5, **kw).as_numpy_iterator()])
    assert np.abs(np.diff(x[..., 1], axis=1)).mean() < np.abs(np.diff(sharp[..., 1], axis=1)).mean()
