"""Fuzzing (hypothesis): arbitrary bytes and values fed to the image / mask readers, the class-map
loaders (YAML, class_dict.csv) and the config parser give only landseg's own error types, each
naming its input - never a stray exception from PIL, tifffile, YAML or csv (issue 13).

Kept fast: 50 examples per property, no deadline (the 2-core CI machine is slow and shared), no
example database (nothing written into the checkout)."""

import io
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "landseg-hypothesis"))  # not .hypothesis/ in the checkout
from hypothesis import strategies as st  # noqa: E402

from landseg.classmaps import ClassMap, get_classmap, load_classmap  # noqa: E402
from landseg.config import ConfigError, load_config  # noqa: E402
from landseg.data.errors import DataError  # noqa: E402
from landseg.data.io import read_image, read_mask  # noqa: E402

FAST = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


def _png(array) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(array) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return buf.getvalue()


_GOOD_PNG = _png(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
_GOOD_JPEG = _jpeg(np.full((8, 8, 3), 100, np.uint8))
_GOOD_MASK = _png(np.array([[0, 1], [2, 3]], np.uint8))


def _mutations(seed: bytes):
    """Random bytes, the file cut short anywhere, or a few bytes overwritten."""
    cut = st.integers(0, len(seed)).map(lambda n: seed[:n])
    flipped = st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda edits: bytes(_apply(seed, edits)))
    return st.one_of(st.binary(max_size=600), cut, flipped)


def _apply(seed: bytes, edits):
    b = bytearray(seed)
    for i, v in edits:
        b[i] = v
    return b


def _write(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _only_project_errors(call, path):
    """``call()`` returns (a valid result), or raises a project error whose message names ``path``."""
    try:
        call()
    except DataError as e:
        assert e.path == path and str(e).startswith(path), str(e)
    except ValueError as e:  # class-map / mask-value errors: ValueError subclasses of the project
        assert path in str(e), str(e)
    finally:
        os.remove(path)


@FAST
@given(data=st.one_of(_mutations(_GOOD_PNG), _mutations(_GOOD_JPEG)), suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp"]))
def test_image_reader_gives_only_data_errors(data, suffix):
    path = _write(data, suffix)
    _only_project_errors(lambda: read_image(path), path)


@FAST
@given(data=_mutations(_GOOD_MASK), classmap=st.sampled_from(["synthetic", "deepglobe", "dida"]),
       unknown_to_ignore=st.booleans())
def test_mask_reader_gives_only_data_errors(data, classmap, unknown_to_ignore):
    path = _write(data, ".png")
    _only_project_errors(lambda: read_mask(path, get_classmap(classmap), unknown_to_ignore=unknown_to_ignore), path)


_YAML_SEED = b"""name: mine
class_names: [water, land]
palette: [[0, 0, 255], [0, 255, 0]]
mask_kind: rgb
ignore_colors: [[0, 0, 0]]
"""
_CSV_SEED = b"name,r,g,b\nurban_land,0,255,255\nwater,0,0,255\nunknown,0,0,0\n"


def _classmap_bytes(seed: bytes):
    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300).map(lambda t: t.encode())
    return st.one_of(_mutations(seed), text)


@FAST
@given(data=_classmap_bytes(_YAML_SEED), suffix=st.sampled_from([".yaml", ".yml"]))
def test_yaml_classmap_loader_gives_only_value_errors_naming_the_file(data, suffix):
    path = _write(data, suffix)
    _check_classmap(path)


@FAST
@given(data=_classmap_bytes(_CSV_SEED))
def test_csv_classmap_loader_gives_only_value_errors_naming_the_file(data):
    path = _write(data, ".csv")
    _check_classmap(path)


def _check_classmap(path):
    try:
        cm = load_classmap(path)
        assert isinstance(cm, ClassMap)
    except ValueError as e:
        assert path in str(e), str(e)
    finally:
        os.remove(path)


_CONFIG_SEED = b"""run: {name: x, seed: 3}
data: {name: synthetic, crop_size: 64}
model: {name: cse_unet, options: {base_width: 8}}
train: {epochs: 2, batch_size: 4}
"""


@FAST
@given(data=st.one_of(_mutations(_CONFIG_SEED),
                      st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300).map(str.encode)))
def test_config_file_parser_gives_only_config_errors_naming_the_file(data):
    path = _write(data, ".yaml")
    try:
        load_config(path)
    except ConfigError as e:
        assert path in str(e), str(e)
    finally:
        os.remove(path)


_KEYS = ["run.name", "run.seed", "data.crop_size", "data.val_fraction", "data.bands", "data.name", "model.name",
         "model.options", "train.epochs", "train.batch_size", "optimizer.lr", "schedule.name", "loss.name",
         "data.classmap", "nosuch.key", "train", ""]


@FAST
@given(key=st.sampled_from(_KEYS), value=st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(repr), st.sampled_from(["[1, 2]", "{a: 1}", "null",
                                                                                               "true", "-1", "0"])))
def test_config_overrides_give_only_config_errors_naming_the_key(key, value):
    override = f"{key}={value}"
    try:
        load_config(None, [override])
    except ConfigError as e:
        text = str(e)
        assert (key and key.split(".")[0] in text) or override in text or "override" in text, text
