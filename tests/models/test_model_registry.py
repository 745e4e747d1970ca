"""Registry contract: names, documented options, accepted sizes, clear errors."""

import pytest

from landseg.models import available_models, build_model, check_input_size, get_model_spec

from model_helpers import TINY


def test_every_model_has_a_tiny_config():
    assert set(available_models()) == set(TINY)
    assert {"cse_unet", "unet", "linknet", "fpn", "deeplabv3_resnet50"} <= set(available_models())


def test_options_are_documented_with_defaults():
    for name, opts in available_models().items():
        spec = get_model_spec(name)
        assert set(opts) == set(spec.options) and "logits" in opts
        for text in opts.values():
            assert text.startswith("default=") and len(text.split("; ", 1)[1]) > 10


@pytest.mark.parametrize("name,options,multiple", [
    ("cse_unet", {}, 16), ("unet", {}, 32), ("linknet", {}, 32), ("fpn", {}, 32),
    ("deeplabv3_resnet50", {}, 16), ("deeplabv3_resnet50", {"output_stride": 32}, 32),
    ("lite_unet", {}, 32), ("lite_unet", {"encoder": "resnet18_geoembed", "input_downsample": 4}, 32),
    ("deeplabv3plus", {}, 16), ("deeplabv3plus", {"input_downsample": 2}, 32),
    ("deeplabv3plus", {"encoder": "resnet18_geoembed", "input_downsample": 2}, 16),
    ("segformer", {}, 32), ("fcn8s", {}, 32), ("multires_unet", {}, 16),
])
def test_size_multiples(name, options, multiple):
    assert get_model_spec(name).multiple(**options) == multiple
    check_input_size(name, multiple * 3, multiple * 2, **options)
    with pytest.raises(ValueError, match=f"divisible by {multiple}; got {multiple * 3 + 8}x{multiple}"):
        check_input_size(name, multiple * 3 + 8, multiple, **options)


def test_unknown_names_and_options_are_rejected():
    with pytest.raises(ValueError, match="unknown model 'unet3'.*available"):
        build_model("unet3", 6)
    with pytest.raises(ValueError, match="no option.*base_widht.*takes"):
        build_model("cse_unet", 6, base_widht=8)
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("cse_unet", 6, input_shape=(72, 64, 3), base_width=4)
    with pytest.raises(ValueError, match="output_stride must be 16 or 32"):
        build_model("deeplabv3_resnet50", 6, output_stride=8)


def test_every_option_is_a_keyword_of_its_builder_and_the_built_model_states_the_multiple():
    """The registry restates no default and no multiple: each option is a keyword of the builder (whose
    default the registry reads), and the multiple the registry reports is the one the built model carries."""
    import inspect

    from landseg.models.common import size_multiple_of

    for name in available_models():
        spec = get_model_spec(name)
        params = inspect.signature(spec.build_function()).parameters
        assert set(spec.options) <= set(params), (name, set(spec.options) - set(params))
        assert all(params[k].default is not inspect.Parameter.empty for k in spec.options), name
    for name in ("cse_unet", "lite_unet", "multires_unet"):
        model = build_model(name, 3, input_shape=(None, None, 3), **TINY[name])
        assert size_multiple_of(model) == get_model_spec(name).multiple(**TINY[name])
