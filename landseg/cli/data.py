"""``landseg data`` (also ``python -m landseg.data``): dataset tools.

  check      read every file of a dataset and report counts and problems (exit 1 on errors)
  synthetic  write the built-in synthetic dataset
"""

from __future__ import annotations

import argparse
import sys


def _parser(prog: str = "landseg data") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="read every file and report problems")
    c.add_argument("--dataset", help="dataset name (sets class map and layout): deepglobe, dubai, dida, potsdam, "
                   "vaihingen, loveda, synthetic")
    c.add_argument("--data-dir", required=True, help="dataset folder")
    c.add_argument("--layout", help="deepglobe, dubai, dida, mmseg or generic (default: the dataset's)")
    c.add_argument("--classmap", help="built-in class map name or a .yaml / class_dict.csv file "
                   "(default: the dataset's)")
    c.add_argument("--unknown-to-ignore", action="store_true",
                   help="treat mask values not in the class map as 'no label' (reported with counts) "
                   "instead of errors")
    c.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    c.add_argument("--bands", default=None, metavar="4,3,2,8",
                   help="GeoTIFF / GDAL rasters: 1-based band numbers to use (default: all), for --band-stats")
    c.add_argument("--band-stats", metavar="FILE.json", default=None,
                   help="write the rasters' per-band 1st..99th percentiles (nodata excluded) for data.normalisation; "
                   "printed whenever the dataset holds rasters")
    c.add_argument("--workers", type=int, default=2, help="reader threads (default 2)")
    s = sub.add_parser("synthetic", help="write the built-in synthetic dataset")
    s.add_argument("--root", default="data/synthetic")
    s.add_argument("--n-images", type=int, default=64)
    s.add_argument("--size", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None, prog: str = "landseg data") -> int:
    args = _parser(prog).parse_args(argv)
    if args.command == "synthetic":
        from landseg.data.synthetic import ensure_synthetic_dataset

        print(ensure_synthetic_dataset(args.root, n_images=args.n_images, size=args.size, seed=args.seed))
        return 0

    from landseg.data.check import check_dataset, format_report
    from landseg.data.layouts import resolve_dataset

    classmap, layout = args.classmap, args.layout
    if args.dataset:
        try:
            classmap, layout = resolve_dataset(args.dataset, layout=layout, classmap=classmap)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if not classmap or not layout:
        print("error: give --dataset, or both --layout and --classmap", file=sys.stderr)
        return 2
    try:
        from landseg.output_folders import claim_file

        for output in (args.json, args.band_stats):  # before the work: never over a file check did not write
            if output:
                claim_file(output, "data-check")
        report = check_dataset(args.data_dir, classmap, layout, unknown_to_ignore=args.unknown_to_ignore,
                               workers=args.workers)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    stats_code = _band_stats(args, layout)
    if stats_code:
        return stats_code
    if args.json:
        from landseg.io_utils import write_json

        write_json(args.json, report.to_dict())
    return 0 if report.ok else 1


def _band_stats(args, layout) -> int:
    """Print (and with --band-stats save) the rasters' per-band statistics; 0, or 2 on a bad request."""
    from landseg.data.layouts import discover
    from landseg.data.raster import band_statistics, use_rasterio

    try:
        rasters = [s.image for s in discover(args.data_dir, layout).labelled if use_rasterio(s.image)]
    except ValueError:  # no images: the report above said so
        rasters = []
    if not rasters:
        if args.band_stats:
            print("error: --band-stats: the dataset holds no GeoTIFF / GDAL rasters", file=sys.stderr)
            return 2
        return 0
    try:
        bands = [int(b) for b in args.bands.split(",")] if args.bands else None
        norm = band_statistics(rasters, bands)
    except ValueError as e:
        print(f"error: band statistics: {e}", file=sys.stderr)
        return 2
    print(f"band statistics of {len(rasters)} raster(s) (percentiles {norm.percentiles[0]:g}..{norm.percentiles[1]:g}, "
          "nodata excluded): " + ", ".join(f"band {b}: {lo:g}..{hi:g}" for b, lo, hi in
                                           zip(bands or range(1, len(norm.lo) + 1), norm.lo, norm.hi)))
    if args.band_stats:
        norm.save(args.band_stats)
        print(f"written {args.band_stats} (use it as data.normalisation={args.band_stats})")
    return 0


def run() -> None:
    from landseg.cli import common

    sys.exit(common.guarded(main, prog="python -m landseg.data"))
