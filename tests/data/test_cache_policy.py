"""data.cache: what 'auto' decides, and the uncached pipeline (file list shuffled, scenes decoded on
demand) giving the same kind of batches as the cached one."""

import numpy as np

from data_helpers import save
from landseg.classmaps import get_classmap
from landseg.data.cache_policy import MEMORY_SHARE, decoded_bytes, resolve_cache, usable_memory
from landseg.data.layouts import Sample
from landseg.data.pipeline import build_dataset, scene_sizes

CM = get_classmap("synthetic")


def _samples(tmp_path, n=5, size=(48, 40)):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        mask = rng.integers(0, 6, (size[1], size[0])).astype(np.uint8)
        image = np.stack([mask * 40 + 5, mask * 0 + i * 30, mask * 0], -1).astype(np.uint8)  # band 2 names the scene
        out.append(Sample(save(tmp_path / "images" / f"{i}.png", image), save(tmp_path / "masks" / f"{i}.png", mask)))
    return out


def test_decoded_bytes_count_image_bands_and_mask():
    assert decoded_bytes([(2448, 2448)] * 200, bands=3) == 2448 * 2448 * 4 * 200  # 4.8 GB: the example


def test_auto_caches_only_what_fits_the_memory_share():
    sizes = [(1000, 1000)] * 10  # 40 MB decoded
    need = decoded_bytes(sizes, 3)
    assert resolve_cache("auto", sizes, 3, memory=int(need / MEMORY_SHARE) + 1) is True
    assert resolve_cache("auto", sizes, 3, memory=int(need / MEMORY_SHARE) - 1000) is False
    assert resolve_cache(True, sizes, 3) is True and resolve_cache("none", sizes, 3) is False
    assert resolve_cache("/tmp/x/cache", sizes, 3) == "/tmp/x/cache"


def test_usable_memory_is_a_plausible_figure():
    m = usable_memory()
    assert m is None or 64 * 2**20 < m < 2**50


def test_scene_sizes_read_headers(tmp_path):
    assert scene_sizes(_samples(tmp_path, n=2, size=(48, 40))) == [(48, 40), (48, 40)]


def test_uncached_training_sees_every_scene_each_epoch_in_a_new_order(tmp_path):
    samples = _samples(tmp_path, n=5)
    ds = build_dataset(samples, CM, training=True, crop_size=32, batch_size=1, cache=False, seed=2,
                       shuffle_buffer=1)  # no crop shuffle: the order seen is the file-list order

    def epoch():
        order = []
        for x, y in ds.as_numpy_iterator():
            np.testing.assert_array_equal(np.round((x[..., 0] * 255 - 5) / 40), y)  # aligned
            order.append(int(round(x[0, 0, 0, 1] * 255 / 30)))
        return order

    first, second = epoch(), epoch()
    assert sorted(first) == sorted(second) == [0, 1, 2, 3, 4]
    assert first != second
    again = build_dataset(samples, CM, training=True, crop_size=32, batch_size=1, cache=False, seed=2, shuffle_buffer=1)
    assert [int(round(x[0, 0, 0, 1] * 255 / 30)) for x, _ in again.as_numpy_iterator()] == first  # seeded


def test_auto_in_build_dataset_matches_explicit_choice(tmp_path):
    samples = _samples(tmp_path, n=3)
    a = list(build_dataset(samples, CM, training=False, crop_size=32, batch_size=2, cache="auto").as_numpy_iterator())
    b = list(build_dataset(samples, CM, training=False, crop_size=32, batch_size=2, cache=False).as_numpy_iterator())
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
