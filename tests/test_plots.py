"""Figures: real PNGs of the promised size, arrays for TensorBoard, no temp files left behind."""

import csv

import numpy as np
import pytest
from PIL import Image

from landseg import plots
from landseg.classmaps import IGNORE_INDEX, get_classmap


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size[1], im.size[0], np.asarray(im.convert("RGB"))


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def _history():
    e = np.arange(6)
    return {"epoch": list(e), "loss": list(1 / (e + 1)), "val_loss": list(1.2 / (e + 1)),
            "mean_iou": list(e / 6), "val_mean_iou": list(e / 7), "learning_rate": [1e-3] * 6}


def test_learning_curves_from_dict_and_csv(tmp_path):
    out = tmp_path / "curves.png"
    plots.plot_learning_curves(_history(), out)
    h, w, pixels = _png(out)
    assert (h, w) == plots.learning_curves_size()
    assert pixels.std() > 0  # something was drawn
    csv_path = tmp_path / "history.csv"
    hist = _history()
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(hist))
        writer.writerows(zip(*hist.values()))
    out2 = tmp_path / "curves_csv.png"
    plots.plot_learning_curves(csv_path, out2)
    # the same numbers give the same picture whether they come from a dict or a CSVLogger file
    assert np.array_equal(_png(out2)[2], pixels)
    assert _no_temp_files(tmp_path)


def test_learning_curves_rejects_history_without_loss(tmp_path):
    with pytest.raises(ValueError, match="loss"):
        plots.plot_learning_curves({"mean_iou": [0.1, 0.2]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_png_and_array(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 100, (6, 6)) + np.diag(np.full(6, 1000))
    cm[5] = 0  # a class absent from the truth must not break row normalisation
    names = get_classmap("potsdam").class_names
    out = tmp_path / "cm.png"
    plots.plot_confusion_matrix(cm, names, out)
    h, w, pixels = _png(out)
    arr = plots.confusion_matrix_array(cm, names)
    assert arr.dtype == np.uint8 and arr.shape == (h, w, 3)
    assert np.array_equal(arr, pixels)
    with pytest.raises(ValueError, match="class names"):
        plots.plot_confusion_matrix(cm, names[:5], tmp_path / "bad.png")


def test_panels_png_and_array_size_and_palette(tmp_path):
    cmap = get_classmap("synthetic")
    rng = np.random.default_rng(1)
    n, size = 3, 48
    images = [rng.integers(0, 256, (size, size, 4), dtype=np.uint8) for _ in range(n)]  # 4 bands: first 3 shown
    targets = [rng.integers(0, cmap.num_classes, (size, size)) for _ in range(n)]
    targets[0][:10] = IGNORE_INDEX
    probs = rng.random((n, size, size, cmap.num_classes)).astype(np.float32)
    preds = [probs[0], probs[1].argmax(-1), None]  # probabilities, indices, or nothing
    out = tmp_path / "panels.png"
    plots.plot_panels(images, targets, preds, cmap, out, titles=["a", "b", "c"])
    h, w, pixels = _png(out)
    assert (h, w) == plots.panel_size(n)
    arr = plots.panel_array(images, targets, preds, "synthetic", titles=["a", "b", "c"])
    assert arr.shape == (*plots.panel_size(n), 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, pixels)
    # the masks are drawn in the palette, in exact colours (nearest-neighbour): every class colour
    # covers far more pixels than its small legend patch could
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    count = {tuple(int(v) for v in c): int(k) for c, k in zip(colours, counts)}
    assert all(count.get(tuple(c), 0) > 2000 for c in cmap.palette)
    with pytest.raises(ValueError, match="titles"):
        plots.panel_array(images, targets, preds, cmap, titles=["only one"])
    assert _no_temp_files(tmp_path)


def test_panels_on_a_real_mask(shared_data, tmp_path):
    cmap = get_classmap("potsdam")
    img_path = sorted((shared_data / "potsdam" / "img_dir").glob("*.png"))[0]
    mask_path = shared_data / "potsdam" / "ann_dir" / img_path.name
    image = np.asarray(Image.open(img_path))[:128, :128]
    target = cmap.decode_mask(np.asarray(Image.open(mask_path)))[:128, :128]
    arr = plots.panel_array([image], [target], [np.roll(target, 5, axis=1)], cmap)
    assert arr.shape == (*plots.panel_size(1), 3)


def test_lr_finder_png(tmp_path):
    lrs = np.logspace(-6, 0, 50)
    losses = 2 - np.tanh(np.log10(lrs) + 4) + np.where(lrs > 0.1, (lrs * 20) ** 2, 0)
    out = tmp_path / "lr.png"
    plots.plot_lr_finder(lrs, losses, 3e-4, out)
    h, w, pixels = _png(out)
    assert (h, w) == (450, 700) and pixels.std() > 0
    plots.plot_lr_finder(lrs, losses, None, tmp_path / "lr_nosuggestion.png")
    with pytest.raises(ValueError, match="equal length"):
        plots.plot_lr_finder(lrs, losses[:-1], 1e-3, tmp_path / "bad.png")


def test_learning_curves_epoch_numbering(tmp_path):
    """Keras' CSVLogger counts epochs from 0, a run's history.csv from 1: both draw epochs 1..n."""
    zero_based = _history()
    one_based = dict(zero_based, epoch=[e + 1 for e in zero_based["epoch"]])
    no_epoch = {k: v for k, v in zero_based.items() if k != "epoch"}
    pictures = []
    for i, hist in enumerate((zero_based, one_based, no_epoch)):
        plots.plot_learning_curves(hist, tmp_path / f"{i}.png")
        pictures.append(_png(tmp_path / f"{i}.png")[2])
    assert np.array_equal(pictures[0], pictures[1]) and np.array_equal(pictures[0], pictures[2])
    shifted = dict(one_based, epoch=[e + 1 for e in one_based["epoch"]])  # a resumed run starting at epoch 2
    plots.plot_learning_curves(shifted, tmp_path / "shifted.png")
    assert not np.array_equal(_png(tmp_path / "shifted.png")[2], pictures[0])
