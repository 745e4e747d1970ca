"""The end of a run: scores of the best model on validation (per-class IoU, confusion matrix,
prediction panels, learning curves), and the run marked finished."""

from __future__ import annotations

import numpy as np

from landseg.training.setup import predict_local


def per_class_table(classmap, cm) -> tuple[dict, str]:
    """``per_class_iou.json`` data and Markdown from :func:`landseg.metrics.summarize` (the one
    per-class writer; the JSON keeps its ``classes`` rows for readers of older runs)."""
    from landseg.metrics import summarize, summary_markdown

    summary = summarize(cm, classmap.class_names)
    rows = [{"class": r["name"], "iou": r["iou"], "pixels": r["true_pixels"]} for r in summary["per_class"]]
    data = {"mean_iou": summary["mean_iou"], "classes": rows, "summary": summary}
    return data, summary_markdown(summary)


def confusion_on(model, dataset, steps, num_classes: int, ignore_index: int):
    """Confusion matrix of ``model`` over ``dataset`` (rows = truth), ignoring ``ignore_index``."""
    from landseg.metrics import confusion_matrix

    total = np.zeros((num_classes, num_classes), np.int64)
    for i, (x, y) in enumerate(dataset):
        if steps is not None and i >= steps:
            break
        pred = np.argmax(predict_local(model, x), axis=-1)
        total += np.asarray(confusion_matrix(y.numpy(), pred, num_classes, ignore_index=ignore_index), np.int64)
    return total


def finish(model, run_dir, state, classmap, val_ds, val_steps, preview, tb, diverged: bool) -> None:
    """Final reports from the best model: per-class IoU, confusion matrix, prediction panels."""
    from landseg import plots
    from landseg.io_utils import write_json, write_text
    from landseg.runs import RunFolder

    folder = RunFolder(run_dir)
    if not folder.best.is_file():
        return
    model.load_weights(folder.best)
    cm = confusion_on(model, val_ds, val_steps, classmap.num_classes, classmap.ignore_index)
    data, md = per_class_table(classmap, cm)
    data["best_epoch"] = state.get("best_epoch")
    write_json(folder.per_class_json, data)
    write_text(folder.per_class_md, f"# Per-class IoU on validation (best epoch {state.get('best_epoch')})\n\n" + md)
    plots.plot_confusion_matrix(cm, classmap.class_names, folder.confusion, normalize=True)
    step = int(state.get("epochs_completed", 0))
    tb.write_image("confusion_matrix", plots.confusion_matrix_array(cm, classmap.class_names, normalize=True), step - 1)
    if preview is not None:
        images, targets = preview
        preds = np.argmax(predict_local(model, images), axis=-1)
        plots.plot_panels(images, targets, preds, classmap, folder.predictions)
    if folder.history.is_file():
        plots.plot_learning_curves(folder.history, folder.curves, metric="miou")
    if not diverged:
        state["finished"] = True
    state["val_miou_best_model"] = data["mean_iou"]
    folder.write_state(state)

