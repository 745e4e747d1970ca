"""GeoTIFFs written with rasterio and tiny Keras models for the geo / export tests."""

import numpy as np

CRS = "EPSG:32633"  # UTM 33N, metres


def write_geotiff(path, data, *, nodata=None, crs=CRS, origin=(500000.0, 5200000.0), pixel=2.0, **extra):
    """(H, W, C) or (H, W) array -> GeoTIFF in a projected CRS; returns the transform."""
    import rasterio
    from rasterio.transform import from_origin

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[:, :, None]
    h, w, c = data.shape
    transform = from_origin(origin[0], origin[1], pixel, pixel)
    profile = dict(driver="GTiff", width=w, height=h, count=c, dtype=data.dtype.name, crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.moveaxis(data, -1, 0))
    return transform


def smooth_image(h, w, bands=3, seed=0, dtype=np.uint8, scale=255):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(yy / 9.0 + c) * np.cos(xx / 13.0 - c) for c in range(bands)], -1)
    img = (base * 0.35 + 0.5 + rng.normal(0, 0.1, (h, w, bands))).clip(0, 1) * scale
    return np.rint(img).astype(dtype)


def tiny_model(num_classes=3, bands=3, seed=0, pool=4):
    """Conv, pool/upsample by ``pool`` (inputs multiples of it), conv, softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, bands))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer="random_normal")(inp)
    x = keras.layers.MaxPooling2D(pool)(x)
    x = keras.layers.UpSampling2D(pool)(x)
    x = keras.layers.Conv2D(num_classes, 3, padding="same", bias_initializer="random_normal")(x)
    return keras.Model(inp, keras.layers.Softmax()(x * 4.0))
