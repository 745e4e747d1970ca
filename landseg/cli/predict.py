"""``landseg predict --models A.keras [B.keras ...] [--weights 2 1] --input DIR --output DIR
[--tta [flips|d4]] [--tile 512 --overlap 0.25] [--dataset NAME] [--save-probs]`` (also
``python -m landseg.predict``): map a folder of scenes with one model or an ensemble.

Per input image ``<stem>``: ``colour/``, ``classes/``, ``overlay/``, ``confidence/`` PNGs and, with
``--save-probs``, ``probs/<stem>.npy``. GeoTIFF / GDAL rasters instead give ``classes/<stem>.tif`` and
``confidence/<stem>.tif``: Cloud-Optimized GeoTIFFs with the input's CRS and transform (colour table,
class names, nodata kept), predicted window by window (memory bounded by the tile rows, not the
scene), and with ``--vector OUT.gpkg`` the class polygons. An image that cannot be read is reported by name and
skipped; the exit code is then 1.

Collections split across workers: ``--shard I/N`` predicts shard I's share (balanced by pixels, the same split
for every worker that sees the same files); a scene already complete (its ``done/<stem>.json`` sidecar
matches the models and settings) is skipped, so a killed worker resumes its share when rerun
(``--overwrite`` predicts all again). ``landseg predict --merge OUT [--input DIR]`` then writes
``OUT/collection_summary.json`` (per-class pixels and area) and ``OUT/scenes.csv`` from all shards' outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from landseg.cli import common


def merge_main(argv, prog: str) -> int:
    p = argparse.ArgumentParser(prog=f"{prog} --merge", description="collection summary from the shards' outputs")
    p.add_argument("--merge", required=True, metavar="OUT", help="output folder the shards wrote into")
    p.add_argument("--input", default=None, help="input folder: list the scenes not yet complete")
    args = p.parse_args(argv)
    from landseg.inference.shard import merge_outputs

    try:
        s = merge_outputs(args.merge, args.input)
    except (ValueError, OSError) as e:
        return common.fail(e)
    missing = s.get("missing", [])
    print(f"merged {s['scenes']} scene(s), {s['pixels']} px into {Path(args.merge) / 'collection_summary.json'}"
          f" and scenes.csv" + (f"; {len(missing)} input(s) not complete: "
                                 + ", ".join(Path(m).name for m in missing) if missing else ""), file=sys.stderr)
    return common.FAILED_ITEMS if missing else common.OK


def main(argv=None, prog: str = "landseg predict") -> int:
    common.setup()
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--merge" or a.startswith("--merge=") for a in argv):
        return merge_main(argv, prog)
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
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="predict only shard I of N (0-based; balanced by pixels, the same split on every worker)")
    p.add_argument("--overwrite", action="store_true",
                   help="predict scenes whose outputs are already complete (default: skip them)")
    p.add_argument("--merge", default=None, metavar="OUT",
                   help="instead of predicting: write OUT's collection summary from the shards' outputs")
    common.add_predictor_args(p)
    args = p.parse_args(argv)

    from landseg.inference.predict import predict_folder

    try:
        shard = None
        if args.shard is not None:
            from landseg.inference.shard import parse_shard

            shard = parse_shard(args.shard)
        summary = predict_folder(args.models, args.input, args.output, weights=args.weights, dataset=args.dataset,
                                 settings=common.settings_from_args(args), save_probs=args.save_probs,
                                 progress=common.progress_from_args(args), vector=args.vector, simplify=args.simplify,
                                 shard=shard, overwrite=args.overwrite)
    except (ValueError, OSError) as e:  # one line naming the file / option (+ a hint for data errors)
        return common.fail(e)
    failed = summary["failed"]
    skipped = summary.get("skipped_complete", [])
    print(f"predicted {len(summary['written'])} image(s) into {args.output}"
          + (f" (shard {shard[0]}/{shard[1]}: {summary['shard']['scenes']} of {summary['shard']['collection']})"
             if shard else "")
          + (f"; {len(skipped)} already complete, skipped" if skipped else "")
          + (f"; {len(failed)} failed: " + ", ".join(Path(f["image"]).name for f in failed) if failed else ""),
          file=sys.stderr)
    return common.FAILED_ITEMS if failed else common.OK


def run() -> None:
    sys.exit(common.guarded(main, prog="python -m landseg.predict"))
