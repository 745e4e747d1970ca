"""``landseg evaluate --models A.keras [B.keras ...] [--weights 2 1] [--dataset NAME] [--data-dir DIR]
[--split val|all] [--output DIR] [--tta [flips|d4]] [--tile 512 --overlap 0.25]`` (also
``python -m landseg.evaluate``; ``--model M.keras`` = one model): measure a model or an ensemble on
whole labelled scenes, per class and per image.

The class map, the treatment of unknown mask colours and (with ``--split val``) the validation
files come from the first model's training run (its ``model_info.json``); ``--dataset`` and
``--data-dir`` default to that run's. Writes ``metrics.json``, ``metrics.md``, ``per_image.csv``,
``confusion_matrix.png`` and best / worst panels. Exit code 1 when an image could not be scored.
"""

from __future__ import annotations

import argparse
import sys

from landseg.cli import common


def main(argv=None, prog: str = "landseg evaluate") -> int:
    common.setup()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    models = p.add_mutually_exclusive_group(required=True)
    models.add_argument("--models", nargs="+", help="saved models (.keras), scored as an ensemble")
    models.add_argument("--model", help="one saved model (.keras)")
    p.add_argument("--weights", nargs="+", type=float, default=None, help="one weight per model (default: equal)")
    p.add_argument("--dataset", default=None, help="dataset name (layout; class map when the model has no run artifact); "
                   "default: the training run's")
    p.add_argument("--data-dir", default=None, help="dataset folder; default: the training run's")
    p.add_argument("--layout", default=None, help="folder layout when --dataset is a class map name, not a dataset")
    p.add_argument("--split", choices=("val", "all"), default="val")
    p.add_argument("--val-fraction", type=float, default=None, help="re-split with this fraction instead of the run's files")
    p.add_argument("--seed", type=int, default=None, help="re-split with this seed instead of the run's files")
    p.add_argument("--unknown-mask-values", choices=("error", "ignore"), default=None,
                   help="mask colours the class map lacks: error, or ignore (no label); default: as the run was trained")
    p.add_argument("--output", default=None, help="default: <first model's folder>/eval_<dataset>_<split>")
    p.add_argument("--panels", type=int, default=3, help="best and worst images shown")
    common.add_predictor_args(p)
    args = p.parse_args(argv)

    from landseg.inference.evaluate import evaluate_models

    try:
        res = evaluate_models(args.models or [args.model], weights=args.weights, data_dir=args.data_dir,
                              dataset=args.dataset, layout=args.layout, split=args.split, val_fraction=args.val_fraction,
                              seed=args.seed, unknown_mask_values=args.unknown_mask_values, output=args.output,
                              settings=common.settings_from_args(args), panels=args.panels,
                              progress=common.progress_from_args(args))
    except (ValueError, OSError) as e:  # one line naming the file / option (+ a hint for data errors)
        return common.fail(e)
    fmt = lambda v: "n/a" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    print(f"mIoU {fmt(res['miou'])} (absent classes excluded), pixel accuracy {fmt(res['pixel_accuracy'])} "
          f"on {res['images']} scene(s)" + (f", {len(res['failed'])} failed" if res["failed"] else "")
          + (f", {len(res['left_out'])} left out (no mask)" if res.get("left_out") else "")
          + f"; report in {res['output']}", file=sys.stderr)
    return common.FAILED_ITEMS if res["failed"] else common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.evaluate"))
