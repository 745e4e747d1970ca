"""``landseg export --model RUN/best.keras --format savedmodel|onnx|tflite --output DIR [--tile 256]``
(also ``python -m landseg.export``): export a trained model, with its input size, normalisation and
classes in ``DIR/landseg_export.json``, and check that the exported model's output equals Keras'
within the format's tolerance (SavedModel 1e-5, ONNX 1e-4, TFLite 1e-4 max abs difference of the
class probabilities; exit code 3 when it does not).
"""

from __future__ import annotations

import argparse

from landseg.cli import common


def main(argv=None, prog: str = "landseg export") -> int:
    common.setup()
    from landseg.export import DEFAULT_TILE, FORMATS

    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a saved model (.keras); its run folder's run artifact is read")
    p.add_argument("--format", required=True, choices=FORMATS, help="export format")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="fixed input height and width of the exported graph")
    p.add_argument("--tolerance", type=float, default=None, help="max abs difference allowed (default: per format)")
    p.add_argument("--no-check", action="store_true", help="skip running the exported model against Keras")
    args = p.parse_args(argv)

    from landseg.export import ExportCheckError, ExportError, export_model

    try:
        r = export_model(args.model, args.format, args.output, tile=args.tile, tolerance=args.tolerance,
                         check=not args.no_check)
    except ExportCheckError as e:
        return common.error(str(e), common.DIVERGED)
    except (ExportError, ValueError, OSError) as e:
        return common.fail(e)
    check = "not checked" if args.no_check else (f"max |exported - keras| = {r.max_abs_diff:.2e} <= {r.tolerance:g}, "
                                                  f"argmax agreement {r.argmax_agreement:.2%}")
    print(f"exported {args.format} to {r.path} (input {list(r.input_shape)}); {check}; see {r.sidecar}")
    return common.OK


def run() -> None:
    import sys

    sys.exit(common.guarded(main, prog="python -m landseg.export"))
