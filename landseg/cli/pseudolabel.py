"""``landseg pseudolabel --models A.keras [B.keras ...] --input DIR --output DIR --threshold T
[--weights ...] [--tta [flips|d4]] [--tile 512 --overlap 0.25]`` (also ``python -m landseg.pseudolabel``):
pseudo-label a folder of unlabelled images.

Writes ``DIR/masks/<stem>.png`` (class indices where the ensemble is at least ``T`` confident, the
class map's ignore value elsewhere) and ``DIR/summary.json``; training takes such folders through
``data.pseudo_label_dirs``.
"""

from __future__ import annotations

import argparse
import sys

from landseg.cli import common


def main(argv=None, prog: str = "landseg pseudolabel") -> int:
    common.setup()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_ensemble_args(p)
    p.add_argument("--input", required=True, help="folder of unlabelled images")
    p.add_argument("--output", required=True, help="output folder (masks/ and summary.json)")
    p.add_argument("--threshold", type=float, required=True, help="minimum ensemble confidence for a pixel to be labelled (0-1)")
    common.add_predictor_args(p)
    args = p.parse_args(argv)

    from landseg.inference.pseudolabel import pseudolabel

    try:
        summary = pseudolabel(args.models, args.input, args.output, args.threshold, weights=args.weights,
                              dataset=args.dataset, settings=common.settings_from_args(args),
                              progress=common.progress_from_args(args))
    except (ValueError, OSError) as e:  # one line naming the file / option (+ a hint for data errors)
        return common.fail(e)
    failed = summary["failed"]
    print(f"pseudo-labelled {len(summary['images'])} image(s): {summary['fraction_labelled']:.1%} of pixels at "
          f"confidence >= {args.threshold}; {args.output}/summary.json" + (f"; {len(failed)} failed" if failed else ""),
          file=sys.stderr)
    return common.FAILED_ITEMS if failed else common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.pseudolabel"))
