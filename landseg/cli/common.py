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


# ----------------------------------------------------------------------------- errors
DEBUG_ENV = "LANDSEG_DEBUG"
DATA_HINT = "`landseg data check DATA_DIR` lists every problem of a dataset at once"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe(e: BaseException) -> tuple[str, str | None, int]:
    """(one line naming what is wrong, a hint or None, exit code) for an exception reaching the CLI."""
    import errno

    from landseg.config import ConfigError
    from landseg.data.errors import DataError
    from landseg.errors import LandsegError, OptionError

    name = type(e).__name__
    if isinstance(e, OptionError):  # the library's option name, shown as the command's flag
        return e.text(flag(e.option)), e.hint, e.exit_code
    if isinstance(e, LandsegError):
        return str(e), e.hint, e.exit_code
    if isinstance(e, ConfigError):
        return f"config error: {e}", None, USAGE
    if isinstance(e, DataError):
        return str(e), DATA_HINT, USAGE
    if isinstance(e, OSError):
        where = e.filename or ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                    errno.EFBIG: "the file size limit was reached"}[e.errno]
            return (f"{where or 'output'}: cannot write: {what} ({e.strerror})",
                    "free some space (or raise the limit) and run the same command again: files written before are "
                    "intact and a training continues from its last saved epoch", USAGE)
        if e.strerror and where:
            return f"{where}: {e.strerror}", None, USAGE
        return str(e) or name, None, USAGE
    if isinstance(e, ValueError):
        return str(e) or name, None, USAGE
    return f"internal error: {name}: {e}", "this is a bug in landseg; run again with --debug and report the traceback", 1


def flag(option: str) -> str:
    """The command-line flag of a library option name: ``batch_size`` -> ``--batch-size``."""
    return "--" + option.replace("_", "-")


def fail(e: BaseException) -> int:
    """Print ``e`` as one line (plus a hint) on stderr, the traceback only under ``--debug`` /
    ``LANDSEG_DEBUG=1``; returns the exit code."""
    if debug_enabled():
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    line, hint, code = describe(e)
    print(f"error: {line}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return code


def guarded(main, argv=None, prog: str | None = None) -> int:
    """Run a command's ``main(argv, prog=...)``: ``--debug`` (anywhere) sets ``LANDSEG_DEBUG=1`` and is
    removed; any exception ends in :func:`fail`'s one line instead of a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    try:
        return main(argv, prog=prog) if prog else main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place where exceptions become messages
        return fail(e)


def check_output_dir(folder, what: str = "output folder") -> None:
    """Create ``folder`` and write, rename and remove a probe there (raises an OSError naming it)."""
    from landseg.io_utils import check_writable_dir

    check_writable_dir(folder, what)


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
    """The predictor settings; bad ``--tile`` / ``--overlap`` / ``--batch-size`` / ``--weights`` raise
    ValueError with the valid ranges, before any model is loaded."""
    from landseg.inference.ensemble import check_weights
    from landseg.inference.predict import PredictorSettings

    settings = PredictorSettings(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, tta=args.tta)
    if getattr(args, "weights", None) is not None:
        models = getattr(args, "models", None) or ([args.model] if getattr(args, "model", None) else [])
        check_weights(args.weights, len(models) if models else None)
    return settings


def progress_from_args(args):
    """A tqdm progress factory on stderr, or None with ``--no-progress``."""
    if getattr(args, "no_progress", False):
        return None
    from functools import partial

    from tqdm import tqdm

    return partial(tqdm, file=sys.stderr)
