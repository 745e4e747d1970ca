"""Config parsing: defaults <- YAML file <- key=value overrides, and errors that list what is valid."""

import pytest
import yaml

from landseg import config as cfg


def test_defaults_are_packaged_and_valid():
    c = cfg.load_config(validate_names=False)
    assert c == cfg.validate(cfg.default_config(), validate_names=False)
    assert c.model.name == "cse_unet" and c.data.name == "synthetic"


def test_file_then_overrides_merge_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"train": {"epochs": 7, "batch_size": 2}, "model": {"options": {"dropout": 0.3}}}))
    c = cfg.load_config(f, ["train.epochs=3", "optimizer.lr=1e-4", "data.pseudo_label_dirs=[a, b]",
                            "train.jit_compile=auto"], validate_names=False)
    assert c.train.epochs == 3  # override beats file
    assert c.train.batch_size == 2  # file beats default
    assert c.model.options == {"base_width": 8, "dropout": 0.3}  # options merge key by key
    assert c.optimizer.lr == pytest.approx(1e-4) and isinstance(c.optimizer.lr, float)
    assert c.data.pseudo_label_dirs == ["a", "b"]
    assert c.train.jit_compile == "auto"
    assert c.schedule.to_dict() == cfg.default_config()["schedule"]  # untouched sections keep defaults


def test_cli_config_args():
    import argparse

    from landseg.cli.common import add_config_args

    p = argparse.ArgumentParser()
    add_config_args(p)
    a = p.parse_args(["--config", "x.yaml", "--strategy", "mirrored", "a.b=1"])
    assert (a.config, a.strategy, a.overrides) == ("x.yaml", "mirrored", ["a.b=1"])
    assert p.parse_args(["--config=y.yaml"]).config == "y.yaml"
    with pytest.raises(SystemExit):
        p.parse_args(["--bogus"])


@pytest.mark.parametrize("override, expected", [
    ("train.epoch=3", r"unknown config key 'train.epoch'; valid keys in train: .*epochs"),
    ("foo.bar=1", r"unknown config key 'foo'; valid keys: data, loss, lr_find, model, optimizer, run"),
    ("train.epochs=abc", r"'train.epochs' must be integer >= 1 and <= 100000, got 'abc'"),
    # the ignore value has one source, the class map: no config key may state another one
    ("loss.ignore_index=0", r"'loss.ignore_index' no longer exists: the ignore value belongs to the class map"),
    ("loss.options.ignore_index=0", r"'loss.options.ignore_index': the ignore value belongs to the class map"),
    ("train.epochs=2.5", r"'train.epochs' must be integer"),
    ("train.epochs=true", r"'train.epochs' must be integer"),
    ("train.epochs=0", r"'train.epochs': 0 is out of range; it must be >= 1 and <= 100000"),
    ("optimizer.lr=-1", r"'optimizer.lr': -1 is out of range; it must be > 0"),
    ("optimizer.name=rmsprop", r"unknown value 'rmsprop'; valid: adam, adamw, sgd"),
    ("schedule.name=step", r"valid: constant, cosine, one_cycle, reduce_on_plateau"),
    ("train.strategy=tpu", r"valid: default, mirrored, multi_worker"),
    ("data.hist_reference=bogus", r"valid: none, train_mean, or a path"),
    ("data.val_fraction=1.5", r"'data.val_fraction': 1.5 is out of range; it must be > 0 and < 1"),
    ("train=3", r"'train' is a section with keys"),
    ("model.options=3", r"'model.options' must be a mapping"),
    ("noequals", r"key.sub=value"),
    # types and fixed choices come from config_schema's annotations
    ("train.mixed_precision=half", r"unknown value 'half'; valid: true/false or float16, bfloat16"),
    ("run.intra_op_threads=many", r"unknown value .many.; valid: integer >= 1 and <= 1024 or tf or null"),
    ("data.bands=[a, b]", r"must be integer >= 1 and <= 64 or list of integers >= 1 and <= 10000"),
    ("data.pseudo_label_dirs=[true]", r"must be list of strings"),
    ("schedule.warmup_epochs=true", r"must be number"),
])
def test_bad_values_stop_with_what_is_valid(override, expected):
    with pytest.raises(cfg.ConfigError, match=expected):
        cfg.load_config(None, [override], validate_names=False)


def test_integer_names_read_as_names(tmp_path):
    """dida's scene groups are file stems such as 121, which YAML reads as integers."""
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  val_groups: [121, Tile 3]\n")
    assert cfg.load_config(f, validate_names=False).data.val_groups == ["121", "Tile 3"]
    c = cfg.load_config(None, ["data.val_groups=[121, 284]", "run.name=2026"], validate_names=False)
    assert (c.data.val_groups, c.run.name) == (["121", "284"], "2026")
    assert cfg.load_config(None, ["train.epochs=3"], validate_names=False).train.epochs == 3  # numbers stay numbers


def test_bad_key_in_file_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  epochz: 3\n")
    with pytest.raises(cfg.ConfigError, match=r"bad.yaml: unknown config key 'train.epochz'"):
        cfg.load_config(f, validate_names=False)
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load_config(tmp_path / "missing.yaml")


def test_registry_names_checked_against_registries():
    from landseg.data.layouts import DATASETS
    from landseg.losses import available_losses
    from landseg.models import available_models

    with pytest.raises(cfg.ConfigError) as e:
        cfg.load_config(None, ["model.name=nosuchnet"])
    assert all(m in str(e.value) for m in available_models())
    with pytest.raises(cfg.ConfigError) as e:
        cfg.load_config(None, ["loss.name=nosuchloss"])
    assert all(m in str(e.value) for m in available_losses())
    with pytest.raises(cfg.ConfigError) as e:
        cfg.load_config(None, ["data.name=nosuchdata"])
    assert all(m in str(e.value) for m in DATASETS)
    with pytest.raises(cfg.ConfigError, match="unknown class map 'nope'"):
        cfg.load_config(None, ["data.classmap=nope"])
    with pytest.raises(cfg.ConfigError, match="valid: .*generic"):
        cfg.load_config(None, ["data.layout=nolayout"])


def test_dataset_fills_layout_and_classmap():
    c = cfg.load_config(None, ["data.name=dubai", "data.data_dir=x"])
    assert (c.data.layout, c.data.classmap) == ("dubai", "dubai")


def test_experiment_configs_are_valid():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "experiments" / "configs"
    files = sorted(folder.glob("*.yaml"))
    assert files, f"no configs in {folder}"
    for f in files:
        cfg.load_config(f)


def test_model_options_follow_the_model(tmp_path):
    c = cfg.load_config(None, ["model.name=unet"])
    assert c.model.options == {}  # the default CSE-UNet's base_width does not leak into UNet
    c = cfg.load_config(None, ["model.options.dropout=0.2"])
    assert c.model.options == {"base_width": 8, "dropout": 0.2}  # one option changed, the rest kept
    c = cfg.load_config(None, ["model.name=unet", "model.options.backbone=resnet18"])
    assert c.model.options == {"backbone": "resnet18"}
    with pytest.raises(cfg.ConfigError, match=r"model 'unet' has no option\(s\) \['base_width'\]"):
        cfg.load_config(None, ["model.name=unet", "model.options={base_width: 8}"])


def test_typed_sections_and_default_yaml_hold_the_same_keys():
    """The dataclasses state the types, default.yaml the values: a key in one only would be lost or missing."""
    import dataclasses

    from landseg.config_schema import Config, Section

    def fields(cls, prefix=""):
        import typing

        hints = typing.get_type_hints(cls)
        out = set()
        for f in dataclasses.fields(cls):
            h = hints[f.name]
            if isinstance(h, type) and issubclass(h, Section):
                out |= fields(h, f"{prefix}{f.name}.")
            else:
                out.add(f"{prefix}{f.name}")
        return out

    assert fields(Config) == set(cfg._flatten(cfg.default_config()))


def test_typed_config_reads_and_names_valid_keys_on_a_typo():
    c = cfg.load_config(None, ["train.epochs=3", "model.options.dropout=0.1"], validate_names=False)
    assert c.train.epochs == 3 and c.model.options["dropout"] == 0.1 and c.optimizer.name == "adam"
    with pytest.raises(AttributeError, match=r"no key 'epoch'; valid keys: epochs, batch_size"):
        c.train.epoch  # noqa: B018
    assert cfg.from_dict(c, validate_names=False) == c  # a Config round-trips through from_dict / to_dict
    assert cfg.from_dict(c.to_dict(), validate_names=False).to_dict() == c.to_dict()

