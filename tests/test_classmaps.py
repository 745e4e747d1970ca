import numpy as np
import pytest

from landseg.classmaps import (BUILTIN, IGNORE_INDEX, ClassMap, UnknownMaskValuesError, available_classmaps,
                               get_classmap, load_classmap)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_round_trip_every_builtin(name):
    cm = get_classmap(name)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, cm.num_classes, size=(17, 23)).astype(np.uint8)
    if cm.mask_kind == "rgb":
        raw = cm.encode_rgb(idx)
    elif cm.mask_kind == "index":
        raw = np.asarray(cm.index_values, np.uint8)[idx]
    else:
        raw = np.where(idx == 1, 200, 30).astype(np.uint8)
    np.testing.assert_array_equal(cm.decode_mask(raw), idx)
    assert ClassMap.from_dict(cm.to_dict()) == cm


def test_deepglobe_binarizes_and_ignores_unknown():
    cm = get_classmap("deepglobe")
    raw = np.array([[[10, 250, 240], [0, 0, 0], [130, 127, 129]]], np.uint8)
    # 130,127,129 binarizes to 255,0,255 = rangeland
    np.testing.assert_array_equal(cm.decode_mask(raw), [[0, IGNORE_INDEX, 2]])


def test_unknown_colour_is_named_with_counts():
    cm = get_classmap("dubai")
    raw = cm.encode_rgb(np.zeros((4, 4), np.uint8))
    raw[0, :3] = (1, 2, 3)
    with pytest.raises(UnknownMaskValuesError, match=r"mask\.png: 3 pixels .*#010203 \(3 px\)") as err:
        cm.decode_mask(raw, source="mask.png")
    assert err.value.values == ["#010203"] and err.value.counts == [3]


def test_index_map_rejects_undefined_values():
    with pytest.raises(UnknownMaskValuesError, match="9"):
        get_classmap("loveda").decode_mask(np.array([[0, 1, 9]], np.uint8))


def test_encode_rgb_paints_ignore_with_ignore_colour():
    cm = get_classmap("deepglobe")
    out = cm.encode_rgb(np.array([[IGNORE_INDEX, 4]]))
    np.testing.assert_array_equal(out, [[[0, 0, 0], [0, 0, 255]]])


def test_class_dict_csv(tmp_path):
    path = tmp_path / "class_dict.csv"
    path.write_text("name,r,g,b\nurban_land,0,255,255\nwater,0,0,255\nunknown,0,0,0\n")
    cm = load_classmap(path)
    assert cm.class_names == ("urban_land", "water") and cm.ignore_colors == ((0, 0, 0),)
    assert cm.binarize == 128
    np.testing.assert_array_equal(cm.decode_mask(np.array([[[0, 0, 0], [0, 0, 250]]], np.uint8)), [[255, 1]])


def test_yaml_class_map_and_errors(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("class_names: [a, b]\npalette: ['#FF0000', '#00FF00']\nmask_kind: rgb\n")
    cm = get_classmap(str(path))
    assert cm.name == "mine" and cm.palette == ((255, 0, 0), (0, 255, 0))
    bad = tmp_path / "bad.yaml"
    bad.write_text("class_names: [a, b]\npalette: ['#FF0000', '#00FF00']\nmask_kind: rgb\ncolour: 1\n")
    with pytest.raises(ValueError, match="unknown class map keys.*colour"):
        load_classmap(bad)
    with pytest.raises(ValueError, match="built-in: " + ", ".join(available_classmaps())):
        get_classmap("nope")
