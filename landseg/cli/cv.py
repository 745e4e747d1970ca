"""``landseg cv --folds K [--seeds 0,1,2] [--config FILE.yaml] [key.sub=value ...]`` (also ``python -m landseg.cv``):
judge a recipe by scene-level k-fold cross-validation.

The scene groups of the config's dataset (Dubai: a tile; DeepGlobe: a scene) are dealt into K folds
(``data.split_seed``); each fold trains an ordinary run on the other folds and is scored by
``landseg evaluate`` on its own whole scenes, so every image is validated exactly once. Writes
``<run.output_dir>/<run name>-cvK/``: one run folder per fold and seed, ``cv_summary.json`` and
``cv_summary.md`` (per fold, mean ± sd, per class) and ``cv_report.html``. Started again after a crash,
it keeps the folds that finished and continues the one that did not.
"""

from __future__ import annotations

import argparse
import sys

from landseg.cli import common


def _seeds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None


def main(argv=None, prog: str = "landseg cv") -> int:
    common.setup()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", "-k", type=int, required=True, help="number of folds (at most the number of scene groups)")
    p.add_argument("--seeds", type=_seeds, default=None, metavar="0,1,2",
                   help="training seeds (run.seed) to repeat the CV with, comma-separated (default: run.seed)")
    common.add_predictor_args(p)
    common.add_config_args(p)
    args = p.parse_args(argv)
    config = common.config_from_args(args)
    if config is None:
        return common.USAGE
    from landseg.training.cv import run_cv

    try:
        s = run_cv(config, args.folds, args.seeds, settings=common.settings_from_args(args))
    except Exception as e:  # noqa: BLE001 - config, data, output errors and divergence: one line
        return common.fail(e)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    failed = sum(len(r["failed"]) for r in s["folds"])
    print(f"cross-validation mIoU {fmt(s['mean'])} ± {fmt(s['std'])} over {len(s['folds'])} fold run(s) "
          f"(classes present in each fold){f'; {failed} image(s) failed' if failed else ''}; "
          f"{s['folder']}/cv_summary.md", file=sys.stderr)
    return common.FAILED_ITEMS if failed else common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.cv"))
