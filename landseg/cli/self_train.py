"""``landseg self_train --config CONFIG.yaml --rounds N --unlabelled DIR --threshold T [--tta [flips|d4]]
[--warm-start] [--init-model M.keras] [key=value ...]`` (also ``python -m landseg.self_train``):
train, pseudo-label the unlabelled scenes, retrain with them; N rounds.

Round 0 trains the config as given (or, with ``--init-model``, takes that model instead). Round
r >= 1 pseudo-labels ``DIR`` with round r-1's best model into ``<output_dir>/<name>-selftrain/round<r>-pseudo``
and trains ``<name>-self<r>`` with that folder in ``data.pseudo_label_dirs``.
"""

from __future__ import annotations

import argparse
import sys

from landseg.cli import common


def main(argv=None, prog: str = "landseg self_train") -> int:
    common.setup()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_config_args(p)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--unlabelled", required=True, help="folder of unlabelled images to pseudo-label each round")
    p.add_argument("--threshold", type=float, required=True, help="minimum confidence for a pseudo-labelled pixel")
    p.add_argument("--warm-start", action="store_true", help="start each round from the previous round's best weights")
    p.add_argument("--init-model", default=None, help="use this model as round 0 instead of training it")
    common.add_predictor_args(p)
    args = p.parse_args(argv)
    if args.rounds < 1 or not 0.0 <= args.threshold <= 1.0:
        return common.error("--rounds must be >= 1 and --threshold in [0, 1]")
    config = common.config_from_args(args)
    if config is None:
        return common.USAGE
    from landseg.config import ConfigError
    from landseg.runs.select import OutputError
    from landseg.training.self_train import self_train

    try:
        record = self_train(config, args.rounds, args.unlabelled, args.threshold, settings=common.settings_from_args(args),
                            warm_start=args.warm_start, init_model=args.init_model,
                            progress=common.progress_from_args(args))
    except (OutputError, ConfigError, ValueError, RuntimeError) as e:
        return common.fail(e)  # TrainingDiverged -> exit 3
    for r in record["rounds"]:
        print(f"round {r['round']}: {r['model']}" + (f" (pseudo-labelled {r['fraction_labelled']:.1%} of pixels)"
                                                     if "fraction_labelled" in r else ""))
    return common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.self_train"))
