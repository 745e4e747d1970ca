"""``landseg train [--config FILE.yaml] [--strategy S] [key.sub=value ...]`` (also ``python -m landseg.train``):
train a model.

With no arguments it trains a small CSE-UNet on the built-in synthetic dataset. A run writes
into ``<run.output_dir>/<run name>/`` (config, run artifact, best/last checkpoints, history,
plots, per-class IoU) and ``<run.tensorboard_dir>/<run name>/``; started again with the same
command after a crash, it continues from its last completed epoch.
"""

from __future__ import annotations

import argparse
import sys

from landseg.cli import common


def parser(prog: str = "landseg train") -> argparse.ArgumentParser:
    from importlib import resources

    defaults = resources.files("landseg").joinpath("configs/default.yaml").read_text()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="keys and defaults (landseg/configs/default.yaml):\n\n" + defaults)
    common.add_config_args(p)
    return p


def main(argv=None, prog: str = "landseg train") -> int:
    common.setup()
    args = parser(prog).parse_args(argv)
    config = common.config_from_args(args)
    if config is None:
        return common.USAGE
    from landseg.training import run_training

    try:
        run_training(config)
    except Exception as e:  # noqa: BLE001 - data, config, output, lock, model-file errors and divergence: one line
        return common.fail(e)
    return common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.train"))
