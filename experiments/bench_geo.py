"""Windowed GeoTIFF prediction vs the in-memory PNG path: time, Mpx/s and peak RSS (experiments/results/geo.md).

    python experiments/bench_geo.py make-model DIR                   # tiny saved model + run artifact
    python experiments/bench_geo.py make-scene OUT.tif SIZE [--png]  # synthetic 3-band uint8 scene, UTM 33N, written in strips
    python experiments/bench_geo.py make-dataset DIR [N] [SIZE]      # 4-band uint16 GeoTIFFs with nodata + class rasters
    /usr/bin/time -v python -m landseg.predict --models DIR/best.keras --input SCENES --output OUT --no-progress

The scene is written strip by strip (it never exists in memory); the model is a tiny fully
convolutional net (conv 8 -> max-pool 4 -> upsample -> conv 6, softmax) so the measurement shows the
memory of the data path (reading, blending, writing), not of a large network.
"""

from __future__ import annotations

import sys

import numpy as np


def make_model(folder: str) -> None:
    from pathlib import Path

    import keras

    from landseg.classmaps import get_classmap
    from landseg.runs import save_run

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer="random_normal")(inp)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.UpSampling2D(4)(x)
    x = keras.layers.Conv2D(6, 3, padding="same", bias_initializer="random_normal")(x)
    model = keras.Model(inp, keras.layers.Softmax()(x * 4.0))
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    model.save(d / "best.keras")
    save_run(d, model="bench_tiny", model_options={}, classmap=get_classmap("synthetic"), bands=3, size_multiple=4)
    print(d / "best.keras")


def scene_rows(y0: int, y1: int, width: int) -> np.ndarray:
    """Deterministic smooth land-cover-like texture, (rows, width, 3) uint8."""
    yy, xx = np.mgrid[y0:y1, 0:width].astype(np.float32)
    base = [np.sin(yy / 97.0 + c) * np.cos(xx / 131.0 - c) + 0.5 * np.sin((xx + yy) / 23.0 + 2 * c) for c in range(3)]
    img = np.stack(base, -1) * 60 + 128
    return np.clip(img, 0, 255).astype(np.uint8)


def make_scene(path: str, size: int, png: bool = False) -> None:
    if png:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        img = np.concatenate([scene_rows(y, min(y + 1024, size), size) for y in range(0, size, 1024)])
        Image.fromarray(img).save(path)
        return
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(500000.0, 5300000.0, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate", BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as ds:
        for y in range(0, size, 512):
            rows = scene_rows(y, min(y + 512, size), size)
            ds.write(np.moveaxis(rows, -1, 0), window=Window(0, y, size, rows.shape[0]))
    print(path)


def make_dataset(root: str, n: int = 12, size: int = 128) -> None:
    """``images/gNN.tif``: 4-band uint16 (blue, green, red, NIR; nodata 0 in a corner block) in UTM 33N;
    ``masks/gNN.tif``: class values of the ``synthetic`` class map (0 agriculture, 1 forest,
    2 water, 5 bare_ground) derived from the bands, nodata 250 along one edge; plus one
    unlabelled 4-band scene ``unlabelled/scene_4band.tif`` (size 2x) to predict."""
    from pathlib import Path

    import rasterio
    from rasterio.transform import from_origin

    def scene(seed, h, w):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        f = [rng.uniform(8, 30) for _ in range(4)]
        moist = np.sin(yy / f[0] + seed) * np.cos(xx / f[1] - seed)
        veg = np.sin((xx + yy) / f[2] + 2 * seed) * np.cos((xx - yy) / f[3])
        cls = np.where(moist > 0.55, 2, np.where(veg > 0.3, 1, np.where(veg < -0.4, 5, 0))).astype(np.uint8)
        base = np.array([[900, 800, 700, 3000],   # agriculture (blue, green, red, near infrared)
                         [400, 600, 350, 3500],   # forest
                         [300, 400, 350, 150],    # water
                         [0, 0, 0, 0], [0, 0, 0, 0],
                         [2200, 2000, 1900, 2500]], np.float32)  # bare ground
        img = base[cls] + rng.normal(0, 250, (h, w, 4)).astype(np.float32) + 200 * moist[..., None]
        img = np.clip(img, 1, 10000).astype(np.uint16)
        img[: h // 6, : w // 6] = 0  # nodata corner (all bands)
        return img, cls

    def write(path, arr, nodata):
        arr = arr if arr.ndim == 3 else arr[..., None]
        with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=arr.shape[2],
                           dtype=arr.dtype.name, crs="EPSG:32633", nodata=nodata,
                           transform=from_origin(600000.0, 5100000.0, 10.0, 10.0)) as ds:
            ds.write(np.moveaxis(arr, -1, 0))

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, cls = scene(i, size, size)
        cls[-4:] = 250  # unlabelled edge
        write(root / "images" / f"g{i:02d}.tif", img, 0)
        write(root / "masks" / f"g{i:02d}.tif", cls, 250)
    (root / "unlabelled").mkdir(exist_ok=True)
    img, _ = scene(999, 2 * size, 2 * size)
    write(root / "unlabelled" / "scene_4band.tif", img, 0)
    print(root)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make-model":
        make_model(sys.argv[2])
    elif cmd == "make-dataset":
        make_dataset(sys.argv[2], *(int(a) for a in sys.argv[3:5]))
    elif cmd == "make-scene":
        make_scene(sys.argv[2], int(sys.argv[3]), png="--png" in sys.argv)
    else:
        sys.exit(__doc__)
