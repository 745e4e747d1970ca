"""Self-training: train, pseudo-label the unlabelled scenes, retrain with them; N rounds
(the library behind ``landseg self_train``).

Round 0 trains the config as given (or, with ``--init-model``, takes that model instead).
Round r >= 1 pseudo-labels ``DIR`` with round r-1's best model into
``<output_dir>/<name>-selftrain/round<r>-pseudo`` and trains ``<name>-self<r>`` with that folder
in ``data.pseudo_label_dirs`` (alongside the labelled data). ``--warm-start`` starts each
round from the previous best weights (``train.init_from``) instead of from scratch.
A ``self_train.json`` beside the pseudo-label folders records every round.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from landseg.config import Config
from landseg.io_utils import write_json


def round_config(config: Config, base_name: str, r: int, pseudo_dir: str, init_from: str | None) -> Config:
    c = copy.deepcopy(config)
    c.run.name = f"{base_name}-self{r}"
    c.data.pseudo_label_dirs = [*c.data.pseudo_label_dirs, os.path.abspath(pseudo_dir)]
    if init_from:
        c.train.init_from = os.path.abspath(init_from)
    return c


def self_train(config: Config, rounds: int, unlabelled: str, threshold: float, *, settings=None, warm_start: bool = False,
               init_model: str | None = None, progress=None) -> dict:
    """Run the rounds; returns the record (also written as ``self_train.json``). ``settings``: a
    :class:`landseg.inference.predict.PredictorSettings` for pseudo-labelling."""
    from landseg.inference.predict import PredictorSettings
    from landseg.inference.pseudolabel import pseudolabel
    from landseg.runs import RunFolder
    from landseg.runs import select as runs
    from landseg.training.fit import run_training

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    settings = settings or PredictorSettings()
    base = runs.default_run_name(config)
    work = Path(config.run.output_dir) / f"{base}-selftrain"
    record = {"config_run_name": base, "unlabelled": os.path.abspath(unlabelled), "threshold": threshold,
              "tta": settings.tta, "warm_start": warm_start, "rounds": []}
    if init_model:
        model = os.path.abspath(init_model)
        record["rounds"].append({"round": 0, "model": model, "trained": False})
    else:
        run_dir = run_training(copy.deepcopy(config))
        model = str(RunFolder(run_dir).best)
        record["rounds"].append({"round": 0, "run_dir": str(run_dir), "model": model, "trained": True})
    write_json(work / "self_train.json", record)
    for r in range(1, rounds + 1):
        pseudo_dir = work / f"round{r}-pseudo"
        summary = pseudolabel([model], unlabelled, pseudo_dir, threshold, settings=settings, progress=progress)
        if not summary["images"]:
            raise RuntimeError(f"round {r}: no unlabelled image could be pseudo-labelled")
        c = round_config(config, base, r, str(pseudo_dir), model if warm_start else None)
        run_dir = run_training(c)
        model = str(RunFolder(run_dir).best)
        record["rounds"].append({"round": r, "pseudo_dir": str(pseudo_dir.resolve()), "fraction_labelled": summary["fraction_labelled"],
                                 "pseudo_images": len(summary["images"]), "pseudo_failed": len(summary["failed"]),
                                 "run_dir": str(run_dir), "model": model, "trained": True})
        write_json(work / "self_train.json", record)
    return record
