"""predict / pseudolabel / evaluate command lines on tiny saved models (run in-process: no extra TF start-up)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landseg.classmaps import get_classmap

from infer_helpers import conv_model, pointwise_model, random_image, whole_probs

CLASSMAP = "synthetic"  # 6 classes


def save_model(model, folder: Path, name="best.keras") -> Path:
    from landseg.runs import save_run

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    model.save(path)
    save_run(folder, model="test_conv", model_options={}, classmap=get_classmap(CLASSMAP), bands=3,
                     size_multiple=1, hist_reference=None)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    a, b = conv_model(num_classes=6, layers=2, seed=11), pointwise_model(num_classes=6, seed=12)
    return (a, save_model(a, root / "a")), (b, save_model(b, root / "b"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two odd-sized readable scenes and one broken file among them."""
    d = tmp_path_factory.mktemp("scenes")
    imgs = {"s1": random_image(45, 70, seed=21), "s2": random_image(33, 31, seed=22)}
    for k, v in imgs.items():
        Image.fromarray(v).save(d / f"{k}.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return d, imgs


def test_predict_writes_everything_and_reports_unreadable(models, scenes, tmp_path, capsys):
    from landseg.cli.predict import main

    (ma, pa), (mb, pb) = models
    d, imgs = scenes
    out = tmp_path / "out"
    code = main(["--models", str(pa), str(pb), "--weights", "3", "1", "--input", str(d), "--output", str(out),
                 "--tile", "32", "--overlap", "0.5", "--save-probs", "--no-progress"])
    assert code == 1  # one image failed
    assert "broken.png" in capsys.readouterr().err
    summary = json.loads((out / "predict_summary.json").read_text())
    assert [Path(f["image"]).name for f in summary["failed"]] == ["broken.png"]
    cm = get_classmap(CLASSMAP)
    for stem, img in imgs.items():
        # conv model has receptive-field radius 2 < blend margin (16 // 4): tiles reproduce whole-image prediction
        ref = 0.75 * whole_probs(ma, img) + 0.25 * whole_probs(mb, img)
        classes = np.asarray(Image.open(out / "classes" / f"{stem}.png"))
        np.testing.assert_array_equal(classes, ref.argmax(-1))
        np.testing.assert_array_equal(np.asarray(Image.open(out / "colour" / f"{stem}.png").convert("RGB")), cm.encode_rgb(classes))
        conf = np.asarray(Image.open(out / "confidence" / f"{stem}.png"))
        assert np.abs(conf.astype(int) - np.round(ref.max(-1) * 255)).max() <= 1
        assert np.asarray(Image.open(out / "overlay" / f"{stem}.png")).shape == img.shape
        np.testing.assert_allclose(np.load(out / "probs" / f"{stem}.npy").astype(np.float32), ref, atol=2e-3)
    assert not (out / "classes" / "broken.png").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # atomic writes left no temporaries


def test_predict_refuses_models_with_different_class_counts(models, scenes, tmp_path, capsys):
    from landseg.cli.predict import main

    (_, pa), _ = models
    other = save_model(pointwise_model(num_classes=4), tmp_path / "c")
    code = main(["--models", str(pa), str(other), "--input", str(scenes[0]), "--output", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "disagree on the number of classes" in err and "has 6" in err and "has 4" in err


def test_pseudolabel_ignores_exactly_the_unconfident_pixels(models, scenes, tmp_path):
    from landseg.data.io import read_mask
    from landseg.data.pseudo_labels import load_pseudo_labelled
    from landseg.inference.predict import PredictorSettings
    from landseg.inference.pseudolabel import pseudolabel

    (ma, pa), (mb, pb) = models
    d, imgs = scenes
    out = tmp_path / "pseudo"
    refs = {k: 0.5 * whole_probs(ma, v) + 0.5 * whole_probs(mb, v) for k, v in imgs.items()}
    # a threshold inside the confidence range, so that it really splits the pixels
    threshold = float(np.quantile(np.concatenate([r.max(-1).ravel() for r in refs.values()]), 0.4))
    summary = pseudolabel([pa, pb], d, out, threshold, settings=PredictorSettings(tile=32, overlap=0.5))
    assert [Path(f["image"]).name for f in summary["failed"]] == ["broken.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"] == threshold and summary["images_dir"] == str(d.resolve())
    samples = load_pseudo_labelled(out)
    assert sorted(Path(s.image).stem for s in samples) == sorted(imgs) and all(s.decoded for s in samples)
    labelled = 0
    counts = np.zeros(6, np.int64)
    for s in samples:
        ref = refs[Path(s.image).stem]
        conf = ref.max(-1)
        expected = np.where(conf < threshold, 255, ref.argmax(-1))
        mask = read_mask(s.mask, CLASSMAP, decoded=True)
        clear = np.abs(conf - threshold) > 1e-5  # float rounding may decide exact ties either way
        assert 0.05 < (conf < threshold).mean() < 0.95
        np.testing.assert_array_equal(mask[clear], expected[clear])
        labelled += int((mask != 255).sum())
        counts += np.bincount(mask[mask != 255], minlength=6)
    assert summary["labelled_pixels"] == labelled
    assert list(summary["class_pixel_counts"].values()) == counts.tolist()


def test_evaluate_matches_sklearn(models, tmp_path):
    from sklearn.metrics import confusion_matrix, jaccard_score

    from landseg.data.synthetic import ensure_synthetic_dataset
    from landseg.cli.evaluate import main

    (ma, pa), _ = models
    root = ensure_synthetic_dataset(tmp_path / "syn", n_images=3, size=48, seed=3)
    out = tmp_path / "eval"
    code = main(["--model", str(pa), "--dataset", "synthetic", "--data-dir", str(root), "--split", "all",
                 "--output", str(out), "--tile", "32", "--overlap", "0.5", "--no-progress"])
    assert code == 0
    res = json.loads((out / "metrics.json").read_text())
    ys, ps = [], []
    for img_path in sorted((root / "images").iterdir()):
        img = np.asarray(Image.open(img_path))[:, :, :3]
        ys.append(np.asarray(Image.open(root / "masks" / (img_path.stem + ".png"))).ravel())
        ps.append(whole_probs(ma, img).argmax(-1).ravel())
    y, p = np.concatenate(ys), np.concatenate(ps)
    keep = y != 255
    y, p = y[keep], p[keep]
    present = np.union1d(np.unique(y), np.unique(p))
    assert res["miou"] == pytest.approx(jaccard_score(y, p, labels=present, average="macro"), abs=1e-6)
    np.testing.assert_array_equal(np.asarray(res["confusion_matrix"]), confusion_matrix(y, p, labels=range(6)))
    assert res["miou_absent_policy"] == "exclude" and res["images"] == 3
    for f in ("metrics.md", "per_image.csv", "confusion_matrix.png", "panels_best.png", "panels_worst.png"):
        assert (out / f).is_file(), f
    assert len((out / "per_image.csv").read_text().strip().splitlines()) == 4


def test_per_image_names_keep_equal_file_names_of_different_tiles_apart():
    from landseg.inference.evaluate import _unique_names

    paths = ["/d/Tile 3/images/image_part_001.jpg", "/d/Tile 5/images/image_part_001.jpg"]
    names = _unique_names(paths)
    assert names == {paths[0]: "Tile 3/images/image_part_001.jpg", paths[1]: "Tile 5/images/image_part_001.jpg"}
    assert _unique_names(["/d/a/x.png"]) == {"/d/a/x.png": "x.png"}
