"""Self-training: train, pseudo-label the unlabelled scenes, retrain with them; N rounds.

    python -m landseg.self_train --config CONFIG.yaml --rounds N --unlabelled DIR --threshold T
        [--tta [flips|d4]] [--warm-start] [--init-model M.keras] [key=value ...]

Round 0 trains the config as given (or, with ``--init-model``, takes that model instead).
Round r >= 1 pseudo-labels ``DIR`` with round r-1's best model into
``<output_dir>/<name>-selftrain/round<r>-pseudo`` and trains ``<name>-self<r>`` with that folder
in ``data.pseudo_label_dirs`` (alongside the labelled data). ``--warm-start`` starts each
round from the previous best weights (``train.init_from``) instead of from scratch.
A ``self_train.json`` beside the pseudo-label folders records every round.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

from landseg.io_utils import write_json


def round_config(config: dict, base_name: str, r: int, pseudo_dir: str, init_from: str | None) -> dict:
    c = copy.deepcopy(config)
    c["run"]["name"] = f"{base_name}-self{r}"
    c["data"]["pseudo_label_dirs"] = list(c["data"].get("pseudo_label_dirs") or []) + [os.path.abspath(pseudo_dir)]
    if init_from:
        c["train"]["init_from"] = os.path.abspath(init_from)
    return c


def self_train(config: dict, rounds: int, unlabelled: str, threshold: float, *, tta="none", warm_start: bool = False,
               init_model: str | None = None, tile: int | None = None, progress: bool = True) -> dict:
    from landseg import runs
    from landseg.pseudolabel import SUMMARY, pseudolabel
    from landseg.train import run_training

    base = runs.default_run_name(config)
    work = Path(config["run"]["output_dir"]) / f"{base}-selftrain"
    record = {"config_run_name": base, "unlabelled": os.path.abspath(unlabelled), "threshold": threshold, "tta": tta,
              "warm_start": warm_start, "rounds": []}
    if init_model:
        model = os.path.abspath(init_model)
        record["rounds"].append({"round": 0, "model": model, "trained": False})
    else:
        run_dir = run_training(copy.deepcopy(config))
        model = str(Path(run_dir) / "best.keras")
        record["rounds"].append({"round": 0, "run_dir": str(run_dir), "model": model, "trained": True})
    write_json(work / "self_train.json", record)
    for r in range(1, rounds + 1):
        pseudo_dir = work / f"round{r}-pseudo"
        code = pseudolabel([model], unlabelled, pseudo_dir, threshold, tta=tta, tile=tile, progress=progress)
        if code == 2:
            raise RuntimeError(f"pseudo-labelling round {r} could not start (see the error above)")
        with open(pseudo_dir / SUMMARY) as f:
            summary = json.load(f)
        if not summary["images"]:
            raise RuntimeError(f"round {r}: no unlabelled image could be pseudo-labelled")
        c = round_config(config, base, r, str(pseudo_dir), model if warm_start else None)
        run_dir = run_training(c)
        model = str(Path(run_dir) / "best.keras")
        record["rounds"].append({"round": r, "pseudo_dir": str(pseudo_dir.resolve()), "fraction_labelled": summary["fraction_labelled"],
                                 "pseudo_images": len(summary["images"]), "pseudo_failed": len(summary["failed"]),
                                 "run_dir": str(run_dir), "model": model, "trained": True})
        write_json(work / "self_train.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    from landseg import config as cfg
    from landseg.inference import TTA_MODES

    p = argparse.ArgumentParser(prog="python -m landseg.self_train", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=None, help="training config (default: the built-in default)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--unlabelled", required=True, help="folder of unlabelled images to pseudo-label each round")
    p.add_argument("--threshold", type=float, required=True, help="minimum confidence for a pseudo-labelled pixel")
    p.add_argument("--tta", nargs="?", const="d4", default="none", choices=sorted(TTA_MODES))
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--warm-start", action="store_true", help="start each round from the previous round's best weights")
    p.add_argument("--init-model", default=None, help="use this model as round 0 instead of training it")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="config key=value overrides, as for landseg.train")
    args = p.parse_args(argv)
    if args.rounds < 1 or not 0.0 <= args.threshold <= 1.0:
        print("error: --rounds must be >= 1 and --threshold in [0, 1]", file=sys.stderr)
        return 2
    try:
        config = cfg.load_config(args.config, args.overrides)
    except cfg.ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    record = self_train(config, args.rounds, args.unlabelled, args.threshold, tta=args.tta, warm_start=args.warm_start,
                        init_model=args.init_model, tile=args.tile, progress=not args.no_progress)
    for r in record["rounds"]:
        print(f"round {r['round']}: {r['model']}" + (f" (pseudo-labelled {r['fraction_labelled']:.1%} of pixels)" if "fraction_labelled" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
