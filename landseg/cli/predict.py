"""``landseg predict --models A.keras [B.keras ...] [--weights 2 1] --input DIR --output DIR
[--tta [flips|d4]] [--tile 512 --overlap 0.25] [--dataset NAME] [--save-probs]`` (also
``python -m landseg.predict``): map a folder of scenes with one model or an ensemble.

Per input image ``<stem>``: ``colour/``, ``classes/``, ``overlay/``, ``confidence/`` PNGs and, with
``--save-probs``, ``probs/<stem>.npy``. GeoTIFF / GDAL rasters instead give ``classes/<stem>.tif`` and
``confidence/<stem>.tif``: Cloud-Optimized GeoTIFFs with the input's CRS and transform (colour table,
class names, nodata kept), predicted window by window (memory bounded by the tile rows, not the
scene), and with ``--vector OUT.gpkg`` the class polygons. An image that cannot be read is reported by name and
skipped; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landseg.cli import common


def main(argv=None, prog: str = "landseg predict") -> int:
    common.setup()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_ensemble_args(p)
    p.add_argument("--input", required=True, help="folder of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--save-probs", action="store_true", help="also write probs/<stem>.npy (float16 HxWxC)")
    p.add_argument("--vector", default=None, metavar="OUT.gpkg",
                   help="GeoTIFF inputs: also write the class polygons (class_id, class_name, area, pixels) to this "
                        "GeoPackage (one layer per raster) or GeoJSON file")
    p.add_argument("--simplify", type=float, default=0.0,
                   help="polygon simplification tolerance in CRS units (default 0: exact pixel edges)")
    common.add_predictor_args(p)
    args = p.parse_args(argv)

    from landseg.inference.predict import predict_folder

    try:
        summary = predict_folder(args.models, args.input, args.output, weights=args.weights, dataset=args.dataset,
                                 settings=common.settings_from_args(args), save_probs=args.save_probs,
                                 progress=common.progress_from_args(args), vector=args.vector, simplify=args.simplify)
    except (ValueError, OSError) as e:  # one line naming the file / option (+ a hint for data errors)
        return common.fail(e)
    failed = summary["failed"]
    print(f"predicted {len(summary['written'])} image(s) into {args.output}"
          + (f"; {len(failed)} failed: " + ", ".join(Path(f["image"]).name for f in failed) if failed else ""),
          file=sys.stderr)
    return common.FAILED_ITEMS if failed else common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.predict"))
