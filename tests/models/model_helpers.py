"""Shared constants for the model tests (a plain module: tests/ is not a package)."""

# Smallest option set per registered name; a new registration without an entry here fails
# test_every_model_has_a_tiny_config so it cannot slip past the forward/round-trip tests.
TINY = {
    "cse_unet": {"base_width": 8},
    "unet": {"backbone": "resnet18"},
    "linknet": {"backbone": "mobilenetv2"},
    "fpn": {"backbone": "resnet18"},
    "deeplabv3_resnet50": {"aspp_filters": 16},
    "lite_unet": {"input_downsample": 2},
    "deeplabv3plus": {"encoder": "mobilenet_v2", "aspp_filters": 16},
    "segformer": {"decoder_width": 32},
    "fcn8s": {"fc_width": 64},
    "multires_unet": {"base_width": 8},
}
NUM_CLASSES = 6
SIZE = 64


def perturb_batchnorms(model, seed=0):
    """Moving statistics and affine weights away from their initial 0/1, so folding has work to do."""
    import numpy as np
    from keras import layers

    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.3, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.3, n))


def save_legacy_h5(model, path):
    """Write the Keras-2 style .h5 that the ImageNet release files use."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)
