"""``landseg report RUN_DIR [RUN_DIR ...] --output report.html`` (also ``python -m landseg.report``):
compare training runs.

Writes one self-contained HTML page (plotly.js, styles and pictures inlined: it opens without a
network) with a table of the runs (model, encoder and weights, the config keys that differ,
epochs, time, best validation mIoU, held-out evaluation figures), per-class IoU side by side with
the best per class marked, interactive learning curves of all runs on shared axes, confusion
matrices and image / target / prediction panels in the dataset's palette.

Held-out figures come from ``python -m landseg.evaluate`` outputs: ``RUN_DIR/eval_*/`` is found
by itself; ``--evals DIR`` adds folders (searched three levels deep) whose ``metrics.json`` names
a model in one of the run folders, e.g. ``--evals experiments/runs/compare/eval``.
"""

from __future__ import annotations

import argparse
import sys


def build_parser(prog: str = "landseg report") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run folders (written by landseg.train)")
    p.add_argument("--output", "-o", required=True, help="HTML file to write (e.g. report.html)")
    p.add_argument("--evals", nargs="*", default=[], metavar="DIR",
                   help="more folders holding landseg.evaluate outputs of these runs")
    p.add_argument("--title", default=None, help="page title (default: the run names)")


def _report(args: argparse.Namespace) -> int:
    from landseg.report import ReportError, write_report

    try:
        out = write_report(args.runs, args.output, eval_dirs=args.evals, title=args.title)
    except (ReportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({size:.1f} MB, {len(args.runs)} runs); open it in a browser (works offline)")
    return 0


def main(argv: list[str] | None = None, prog: str = "landseg report") -> int:
    from landseg.cli import common

    common.setup()
    return _report(build_parser(prog).parse_args(argv))


def run() -> None:
    """``python -m landseg.report``: errors end in one line (``--debug`` for the traceback)."""
    from landseg.cli import common

    sys.exit(common.guarded(main, prog="python -m landseg.report"))


if __name__ == "__main__":
    run()
