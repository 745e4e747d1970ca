"""predict / evaluate / pseudolabel faults end in one line before the work (issue 13): bad numeric
options with their valid ranges, an unwritable --output, a corrupt or truncated .keras, a model
holding code (Lambda); files keep the umask's mode."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landseg.cli import common
from landseg.cli.evaluate import main as evaluate_main
from landseg.cli.predict import main as predict_main
from landseg.cli.pseudolabel import main as pseudolabel_main

from infer_helpers import pointwise_model, random_image
from test_cli import save_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_model(pointwise_model(num_classes=6, seed=3), tmp_path_factory.mktemp("m") / "a")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    Image.fromarray(random_image(40, 52, seed=1)).save(d / "s1.png")
    return d


def _run(main, argv, capsys):
    code = common.guarded(main, argv, prog="landseg test")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("option, value, valid", [
    ("--overlap", "1.0", "[0, 1)"), ("--overlap", "-0.1", "[0, 1)"), ("--tile", "0", "> 0"),
    ("--batch-size", "0", "> 0"), ("--weights", "-1", ">= 0"), ("--weights", "0", "all weights are 0"),
])
def test_predict_options_are_checked_before_work(model, scenes, tmp_path, capsys, option, value, valid):
    out = tmp_path / "out"
    code, err = _run(predict_main, ["--models", str(model), "--input", str(scenes), "--output", str(out),
                                    option, value, "--no-progress"], capsys)
    assert code == 2 and option in err and valid in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing started


def test_weights_count_and_pseudolabel_evaluate_options(model, scenes, tmp_path, capsys):
    code, err = _run(pseudolabel_main, ["--models", str(model), "--input", str(scenes), "--output", str(tmp_path / "p"),
                                        "--threshold", "0.5", "--weights", "1", "2"], capsys)
    assert code == 2 and "2 weight(s) for 1 model(s)" in err
    code, err = _run(evaluate_main, ["--model", str(model), "--overlap", "1.5", "--data-dir", str(scenes)], capsys)
    assert code == 2 and "--overlap 1.5" in err and "[0, 1)" in err


def test_unwritable_output_is_named_before_any_scene(model, scenes, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for main, extra in ((predict_main, []), (pseudolabel_main, ["--threshold", "0.5"])):
        code, err = _run(main, ["--models", str(model), "--input", str(scenes), "--output", str(blocker / "out"),
                                "--no-progress", *extra], capsys)
        assert code == 2 and f"{blocker / 'out'}: output folder is not writable" in err, err
        assert "s1" not in err  # no input is blamed
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        code, err = _run(predict_main, ["--models", str(model), "--input", str(scenes), "--output", str(ro)], capsys)
        assert code == 2 and f"{ro}: output folder is not writable" in err


def test_corrupt_and_truncated_keras_are_reported_as_corrupt(model, scenes, tmp_path, capsys):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(Path(model).read_bytes()[:2000])
    rubbish = tmp_path / "rubbish.keras"
    rubbish.write_bytes(os.urandom(5000))
    for bad in (truncated, rubbish):
        code, err = _run(predict_main, ["--models", str(bad), "--input", str(scenes), "--output",
                                        str(tmp_path / "out")], capsys)
        assert code == 2 and f"{bad}: corrupt or truncated model file" in err, err
        assert "File not found" not in err


def test_lambda_layer_is_refused_naming_the_file(tmp_path, scenes, capsys):
    import keras

    inp = keras.Input((None, None, 3))
    out = keras.layers.Lambda(lambda x: x * 2.0)(keras.layers.Conv2D(6, 1)(inp))
    path = tmp_path / "code.keras"
    keras.Model(inp, out).save(path)
    code, err = _run(predict_main, ["--models", str(path), "--input", str(scenes), "--dataset", "synthetic",
                                    "--output", str(tmp_path / "out")], capsys)
    assert code == 2 and f"{path}: refused: the model holds Python code (a Lambda layer)" in err, err
    assert "safe_mode" not in err


def test_outputs_follow_the_umask(model, scenes, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code = predict_main(["--models", str(model), "--input", str(scenes), "--output", str(tmp_path / "o"),
                             "--no-progress"])
    finally:
        os.umask(old)
    assert code == 0
    files = [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files), [(p, oct(p.stat().st_mode)) for p in files]


def test_atomic_writes_follow_the_umask_and_name_the_file_on_disk_full(tmp_path):
    import errno

    from landseg.io_utils import atomic_path, write_text

    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            write_text(tmp_path / f"f{mask}.txt", "x")
        finally:
            os.umask(old)
        assert (tmp_path / f"f{mask}.txt").stat().st_mode & 0o777 == mode
    target = tmp_path / "best.keras"
    with pytest.raises(OSError) as e:
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.filename == str(target) and not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    line, hint, code = common.describe(e.value)
    assert line == f"{target}: cannot write: the disk is full (No space left on device)" and "intact" in hint


def test_internal_errors_say_bug_and_debug_shows_traceback(capsys, monkeypatch):
    def broken(argv, prog=None):
        raise KeyError("x")

    monkeypatch.setenv(common.DEBUG_ENV, "0")
    assert common.guarded(broken, [], prog="p") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: KeyError") and "--debug" in err and "Traceback" not in err
    assert common.guarded(broken, ["--debug"], prog="p") == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("h, w, ph, pw", [(45, 70, 64, 96), (1, 5, 32, 32), (3, 2, 40, 9), (64, 64, 64, 64), (7, 30, 31, 30)])
def test_reflect_padded_view_equals_the_padded_copy(h, w, ph, pw):
    """Memory (issue 13): tiles are read from the scene through reflected indices, not a padded copy."""
    from landseg.inference.tiling import ReflectPadded, pad_image

    image = np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    full, view = pad_image(image, ph, pw), ReflectPadded(image, ph, pw)
    assert view.shape == full.shape
    rng = np.random.default_rng(0)
    for _ in range(40):
        y0, x0 = rng.integers(0, ph), rng.integers(0, pw)
        y1, x1 = rng.integers(y0 + 1, ph + 1), rng.integers(x0 + 1, pw + 1)
        np.testing.assert_array_equal(view[y0:y1, x0:x1], full[y0:y1, x0:x1])


def test_write_outputs_bands_equal_whole_scene_formulas(tmp_path):
    """The band-wise overlay / confidence equal the whole-scene formulas, pixel for pixel."""
    from landseg.classmaps import get_classmap
    from landseg.inference.predict import confidence_u8, overlay, overlay_rows

    cm = get_classmap("synthetic")
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (700, 33, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (700, 33)).astype(np.uint8)
    conf = rng.random((700, 33)).astype(np.float32)
    np.testing.assert_array_equal(overlay_rows(image, labels, cm, rows=64), overlay(image, cm.encode_rgb(labels)))
    np.testing.assert_array_equal(confidence_u8(conf, rows=50), np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8))


def test_write_outputs_pngs_equal_the_whole_scene_arrays(tmp_path):
    from landseg.classmaps import get_classmap
    from landseg.inference.predict import overlay, write_outputs
    from landseg.inference.predictor import SceneResult

    cm = get_classmap("synthetic")
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (600, 41, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (600, 41)).astype(np.uint8)
    conf = rng.random((600, 41)).astype(np.float32)
    result = SceneResult(labels, conf.copy(), None)
    write_outputs(tmp_path, "s", image, result, cm, release=True)
    assert result.confidence is None
    read = lambda kind: np.asarray(Image.open(tmp_path / kind / "s.png"))  # noqa: E731
    np.testing.assert_array_equal(read("colour"), cm.encode_rgb(labels))
    np.testing.assert_array_equal(read("classes"), labels)
    np.testing.assert_array_equal(read("overlay"), overlay(image, cm.encode_rgb(labels)))
    np.testing.assert_array_equal(read("confidence"), np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8))
