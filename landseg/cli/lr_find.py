"""``landseg lr_find [--config FILE.yaml] [key=value ...]`` (also ``python -m landseg.lr_find``): the
learning-rate finder.

Trains for a few dozen batches while the learning rate grows exponentially from
``lr_find.min_lr`` to ``lr_find.max_lr``, plots loss against learning rate and suggests the rate
where the loss falls fastest; writes ``<run.output_dir>/<run name>-lr_find/``.
"""

from __future__ import annotations

import argparse
import sys

from landseg.cli import common


def main(argv=None, prog: str = "landseg lr_find") -> int:
    common.setup()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_config_args(p)
    args = p.parse_args(argv)
    config = common.config_from_args(args)
    if config is None:
        return common.USAGE
    from landseg.config import ConfigError
    from landseg.training.lr_finder import lr_find_run
    from landseg.runs.select import OutputError

    try:
        result, _ = lr_find_run(config)
    except (OutputError, ConfigError) as e:
        return common.fail(e)
    print(f"suggested: optimizer.lr={result['suggestion']:.3g}")
    return common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.lr_find"))
