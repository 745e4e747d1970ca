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
    "segformer": {"decoder_width": 32},
    "fcn8s": {"fc_width": 64},
    "multires_unet": {"base_width": 8},
}
NUM_CLASSES = 6
SIZE = 64
