"""What the command lines share: logging to the terminal, config arguments, predictor arguments,
progress bars, and the one place where an exception becomes a message and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Exit codes of every command.
OK, FAILED_ITEMS, USAGE, DIVERGED = 0, 1, 2, 3


def setup(quiet_tf: bool = True) -> None:
    """Quiet TensorFlow's C++ log, draw plots off-screen, and show the library's log messages:
    info on stdout, warnings and errors on stderr."""
    if quiet_tf:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
    logger = logging.getLogger("landseg")
    if not any(isinstance(h, _TerminalHandler) for h in logger.handlers):
        logger.addHandler(_TerminalHandler())
    logger.setLevel(logging.INFO)


class _TerminalHandler(logging.Handler):
    """Info on stdout, warnings and errors on stderr; the streams are looked up at each message
    (so a replaced ``sys.stdout`` is honoured)."""

    def emit(self, record):
        try:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


def error(message: str, code: int = USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


# ----------------------------------------------------------------------------- config
def add_config_args(p: argparse.ArgumentParser) -> None:
    from landseg.config import STRATEGIES

    p.add_argument("--config", "-c", default=None, metavar="FILE.yaml", help="config file over the packaged defaults")
    p.add_argument("--strategy", choices=STRATEGIES, default=None, help="tf.distribute strategy (= train.strategy=...)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, e.g. train.epochs=3")


def config_from_args(args):
    """The resolved config of parsed ``add_config_args`` arguments, or None after printing the error."""
    from landseg.config import ConfigError, load_config

    overrides = list(args.overrides) + ([f"train.strategy={args.strategy}"] if args.strategy else [])
    try:
        return load_config(args.config, overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return None


# ----------------------------------------------------------------------------- inference
def add_predictor_args(p: argparse.ArgumentParser) -> None:
    """Options shared by predict / pseudolabel / evaluate / self_train (tiling, TTA, batch)."""
    from landseg.inference.tiling import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE
    from landseg.inference.tta import TTA_MODES

    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size in px (rounded up to the models' size multiple)")
    p.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP, help="fraction of a tile shared with its neighbour")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="tiles per model call (bounds memory)")
    p.add_argument(
        "--tta", nargs="?", const="d4", default="none", choices=sorted(TTA_MODES),
        help="test-time augmentation: 'd4' (8 flips/rotations, default when given bare), 'flips' (4) or 'none'",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_ensemble_args(p: argparse.ArgumentParser, dataset_help: str | None = None) -> None:
    p.add_argument("--models", nargs="+", required=True, help="saved models (.keras); the run artifact beside each is read")
    p.add_argument("--weights", nargs="+", type=float, default=None, help="one weight per model (default: equal)")
    p.add_argument("--dataset", default=None, help=dataset_help or
                   "class map / dataset name for palette and class names (default: saved with the model)")


def settings_from_args(args):
    from landseg.inference.predict import PredictorSettings

    return PredictorSettings(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, tta=args.tta)


def progress_from_args(args):
    """A tqdm progress factory on stderr, or None with ``--no-progress``."""
    if getattr(args, "no_progress", False):
        return None
    from functools import partial

    from tqdm import tqdm

    return partial(tqdm, file=sys.stderr)
