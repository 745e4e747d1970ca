"""File readers: every way a file can be bad gives a DataError naming the file and the problem."""

import numpy as np
import pytest
from PIL import Image

from data_helpers import save
from landseg.classmaps import get_classmap
from landseg.data.errors import DataError, MaskValuesError
from landseg.data.io import list_images, read_image, read_mask, write_png


def test_rgba_grey_and_palette_images(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    p = save(tmp_path / "a.png", rgba)
    assert read_image(p).shape == (8, 9, 4)
    np.testing.assert_array_equal(read_image(p, bands=3), rgba[..., :3])
    grey = save(tmp_path / "g.png", rgba[..., 0])
    assert read_image(grey).shape == (8, 9, 1)
    with pytest.raises(DataError, match=r"g\.png: image has 1 band\(s\), expected 3"):
        read_image(grey, bands=3)
    pal = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_16_bit(tmp_path):
    ok = np.arange(72, dtype=np.uint16).reshape(8, 9)
    Image.fromarray(ok).save(tmp_path / "ok16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "ok16.png")[..., 0], ok)
    Image.fromarray(ok * 1000).save(tmp_path / "big16.png")
    with pytest.raises(DataError, match=r"big16\.png: .*outside 0\.\.255"):
        read_image(tmp_path / "big16.png")


def test_bad_files(tmp_path, shared_data):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    data = (shared_data / "deepglobe" / "train" / "855_sat.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    for name, problem in [("empty.jpg", "empty"), ("text.png", "unreadable"), ("cut.jpg", "truncated"),
                          ("missing.png", "does not exist")]:
        with pytest.raises(DataError, match=problem) as e:
            read_image(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name))


def test_dubai_palette_mask_decodes_like_its_rgb(shared_data):
    path = shared_data / "dubai-aerial" / "Tile 2" / "masks" / "image_part_001.png"
    assert Image.open(path).mode == "P"
    cm = get_classmap("dubai")
    expected = cm.decode_mask(np.asarray(Image.open(path).convert("RGB")))
    np.testing.assert_array_equal(read_mask(path, cm), expected)


def test_unknown_colour_raises_or_is_ignored(tmp_path):
    cm = get_classmap("dubai")
    raw = cm.encode_rgb(np.zeros((4, 5), np.uint8))
    raw[0, :3] = (1, 1, 1)
    p = save(tmp_path / "m.png", raw)
    with pytest.raises(MaskValuesError, match=r"m\.png: 3 pixels .*#010101 \(3 px\)") as e:
        read_mask(p, cm)
    assert e.value.values == ["#010101"] and e.value.counts == [3]
    mask = read_mask(p, cm, unknown_to_ignore=True)
    assert (mask[0, :3] == 255).all() and (mask[1:] == 0).all()


def test_write_png_palette_round_trip(tmp_path):
    cm = get_classmap("synthetic")
    idx = np.random.default_rng(1).integers(0, 6, (12, 10)).astype(np.uint8)
    idx[0, 0] = 255
    write_png(tmp_path / "x.png", idx, palette=cm.palette)
    im = Image.open(tmp_path / "x.png")
    assert im.mode == "P"
    np.testing.assert_array_equal(np.asarray(im), idx)
    np.testing.assert_array_equal(np.asarray(im.convert("RGB"))[1:], cm.encode_rgb(idx)[1:])
    np.testing.assert_array_equal(read_mask(tmp_path / "x.png", cm, decoded=True), idx)
    idx[1, 1] = 7
    write_png(tmp_path / "bad.png", idx)
    with pytest.raises(MaskValuesError, match=r"bad\.png: 1 pixels .*7 \(1 px\)"):
        read_mask(tmp_path / "bad.png", cm, decoded=True)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_list_images(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        list_images(tmp_path)
    save(tmp_path / "b.png", np.zeros((2, 2), np.uint8))
    save(tmp_path / "a.jpg", np.zeros((2, 2, 3), np.uint8))
    assert [p.split("/")[-1] for p in list_images(tmp_path)] == ["a.jpg", "b.png"]


def test_tiff_images_and_masks(tmp_path):
    import tifffile

    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "multi.tif", image)
    np.testing.assert_array_equal(read_image(tmp_path / "multi.tif"), image)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(image, -1, 0), photometric="minisblack", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), image)
    mask = rng.integers(1, 8, (10, 12)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif", "loveda"), mask - 1)
    tifffile.imwrite(tmp_path / "deep.tif", image.astype(np.uint16) * 200)
    with pytest.raises(DataError, match=r"deep\.tif: .*uint16"):
        read_image(tmp_path / "deep.tif")
