"""Checks behind experiments/results/geo.md, on outputs of `landseg.predict`:

    python experiments/geo_checks.py mosaic SYNTHETIC_DIR OUT_DIR   # 1024x1024 scene from 64 synthetic images -> OUT_DIR/png/scene.png
                                                                    # and OUT_DIR/geo/scene.tif (3-band uint8, EPSG:32633, 0.5 m)
    python experiments/geo_checks.py compare PNG_OUT GEO_OUT INPUT.tif [POLYGONS.gpkg]
        # same CRS/transform/size as the input, colour table, classes equal to the PNG path's,
        # polygon areas per class vs the raster's pixel counts
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def mosaic(synthetic_dir: str, out_dir: str) -> None:
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    files = sorted((Path(synthetic_dir) / "images").glob("*.png"))[:64]
    tiles = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    s = tiles[0].shape[0]
    scene = np.zeros((8 * s, 8 * s, 3), np.uint8)
    for k, t in enumerate(tiles):
        scene[(k // 8) * s:(k // 8 + 1) * s, (k % 8) * s:(k % 8 + 1) * s] = t[:s, :s]
    out = Path(out_dir)
    (out / "png").mkdir(parents=True, exist_ok=True)
    (out / "geo").mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene).save(out / "png" / "scene.png")
    with rasterio.open(out / "geo" / "scene.tif", "w", driver="GTiff", width=scene.shape[1], height=scene.shape[0],
                       count=3, dtype="uint8", crs="EPSG:32633", transform=from_origin(500000.0, 5200000.0, 0.5, 0.5),
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate") as ds:
        ds.write(np.moveaxis(scene, -1, 0))
    print(out / "png" / "scene.png", out / "geo" / "scene.tif", scene.shape)


def compare(png_out: str, geo_out: str, input_tif: str, gpkg: str | None = None) -> None:
    import rasterio
    from PIL import Image

    png = np.asarray(Image.open(Path(png_out) / "classes" / "scene.png"))
    with rasterio.open(input_tif) as src, rasterio.open(Path(geo_out) / "classes" / "scene.tif") as ds:
        geo = ds.read(1)
        print(f"input:  {src.crs} {src.width}x{src.height} transform {tuple(src.transform)[:6]}")
        print(f"output: {ds.crs} {ds.width}x{ds.height} transform {tuple(ds.transform)[:6]} driver {ds.driver} "
              f"tiled {ds.profile.get('tiled')} {ds.profile.get('compress')} overviews {ds.overviews(1)}")
        print(f"same CRS {ds.crs == src.crs}, same transform {ds.transform == src.transform}, "
              f"same size {(ds.width, ds.height) == (src.width, src.height)}")
        cmap = ds.colormap(1)
        tags = ds.tags()
        pixel_area = abs(ds.transform.a * ds.transform.e)
    names = json.loads(tags["LANDSEG_CLASS_NAMES"])
    print("colour table:", {names[i]: cmap[i][:3] for i in range(len(names))})
    equal = int((png == geo).sum())
    print(f"classes equal to the PNG path's: {equal} of {png.size} pixels ({100 * equal / png.size:.4f}%)")
    counts = np.bincount(geo[geo != 255].ravel(), minlength=len(names))
    if gpkg:
        from pyogrio.raw import read as raw_read

        meta, _, _, fields = raw_read(gpkg, layer="scene")
        cls, area = fields[1], fields[2]
        print(f"polygons: {len(area)}")
        print("| class | raster pixels | raster area (m²) | polygon area (m²) | difference |")
        print("|---|---:|---:|---:|---:|")
        for i, n in enumerate(names):
            if counts[i] == 0:
                continue
            a = float(area[cls == n].sum())
            r = counts[i] * pixel_area
            print(f"| {n} | {counts[i]} | {r:.2f} | {a:.2f} | {100 * (a - r) / r:+.3f}% |")


if __name__ == "__main__":
    if sys.argv[1] == "mosaic":
        mosaic(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "compare":
        compare(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
