"""``landseg <stage> [args ...]``: one command with the stages as subcommands (the console script
installed with the package); ``landseg <stage> --help`` shows a stage's options."""

from __future__ import annotations

import importlib
import os
import sys

from landseg.cli import common

# stage -> (module in landseg.cli, one line)
STAGES = {
    "data": ("data", "dataset tools: check a dataset, write the synthetic one"),
    "train": ("train", "train a model from a config"),
    "cv": ("cv", "judge a recipe by scene-level k-fold cross-validation"),
    "lr_find": ("lr_find", "learning-rate finder"),
    "evaluate": ("evaluate", "score a model or an ensemble on whole labelled scenes"),
    "predict": ("predict", "map a folder of scenes with a model or an ensemble"),
    "pseudolabel": ("pseudolabel", "pseudo-label a folder of unlabelled scenes"),
    "self_train": ("self_train", "rounds of train -> pseudo-label -> retrain"),
    "export": ("export", "export a trained model to SavedModel, ONNX or TFLite, checked against Keras"),
    "report": ("report", "compare training runs in one self-contained HTML page"),
}


def usage() -> str:
    width = max(map(len, STAGES))
    return "usage: landseg <stage> [args ...]\n\nstages:\n" + "\n".join(
        f"  {name.ljust(width)}  {line}" for name, (_, line) in STAGES.items()) + "\n\n`landseg <stage> --help` for a stage's options.\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in argv:  # anywhere: tracebacks on (common.guarded)
        argv = [a for a in argv if a != "--debug"]
        os.environ[common.DEBUG_ENV] = "1"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    stage = argv[0].replace("-", "_")
    if stage not in STAGES:
        print(f"landseg: unknown stage {argv[0]!r}; valid: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"landseg.cli.{STAGES[stage][0]}")
    return common.guarded(module.main, argv[1:], prog=f"landseg {stage}")


def run() -> None:
    sys.exit(main())
