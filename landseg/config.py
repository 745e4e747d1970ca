"""Training configuration: packaged YAML defaults <- ``--config FILE.yaml`` <- ``key.sub=value`` overrides.

The layers are merged as dicts, checked against the typed sections of ``config_schema`` and
returned as one typed :class:`Config`, which drives a run and is saved beside its outputs, so
a run can be repeated exactly. Every key is checked up front (unknown key, wrong type, unknown
model / loss / optimizer / schedule / dataset / class map) and a bad one stops at once with
what is valid, rather than failing an hour into training.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from typing import Any, Iterable, Sequence

import yaml

from landseg import bounded_yaml
from landseg.config_schema import (Config, ConfigError, OptimizerSection, ScheduleSection, TrainSection, check_types,
                                   choices, short as _short)

__all__ = ["Config", "ConfigError", "load_config", "from_dict", "default_config", "validate"]


OPTIMIZERS = choices(OptimizerSection, "name")
SCHEDULES = choices(ScheduleSection, "name")
STRATEGIES = choices(TrainSection, "strategy")
MIXED_PRECISION = choices(TrainSection, "mixed_precision")
# train.mixed_precision: true = float16; "bfloat16" pays on CPUs with AVX512-BF16 / AMX for plain convolutions
POLICIES = {True: "mixed_float16", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16", False: "float32"}
HIST_MODES = ("none", "train_mean")

# Keys whose value is a free-form mapping passed on to another component (checked there).
FREE_FORM = {"model.options", "loss.options"}


def default_config() -> dict:
    """The packaged built-in default (``landseg/configs/default.yaml``)."""
    text = resources.files("landseg").joinpath("configs/default.yaml").read_text()
    return yaml.safe_load(text)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in FREE_FORM:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


# Keys that no longer exist, with where their fact lives now.
REMOVED = {
    "loss.ignore_index": "the ignore value belongs to the class map (data.classmap): 255 in every built-in one, "
                         "or `ignore_index:` in your class map file; loss, metrics, evaluation and pseudo-labels all "
                         "take it from there",
}


def merge(base: dict, update: dict, schema: dict | None = None, where: str = "") -> dict:
    """Deep-merge ``update`` into a copy of ``base``; keys absent from ``schema`` are errors."""
    schema = base if schema is None else schema
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        key = f"{where}{k}"
        if key in REMOVED:
            raise ConfigError(f"config key {_short(key)} no longer exists: {REMOVED[key]}")
        if not isinstance(schema, dict) or k not in schema:
            section = where.rstrip(".")
            valid = sorted(schema) if isinstance(schema, dict) else []
            raise ConfigError(f"unknown config key {_short(key)}; valid keys{' in ' + section if section else ''}: "
                              f"{', '.join(valid)}")
        if isinstance(v, dict) and not isinstance(schema[k], dict) and key not in FREE_FORM:
            raise ConfigError(f"config key {_short(key)} takes a single value, not the mapping {_short(v)}")
        if key in FREE_FORM and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **copy.deepcopy(v)}  # model.options.dropout=0.2 keeps the other options
        elif isinstance(schema[k], dict) and key not in FREE_FORM:
            if not isinstance(v, dict):
                raise ConfigError(f"config key {_short(key)} is a section with keys {', '.join(sorted(schema[k]))}; "
                                  f"give it a mapping, not {_short(v)} (or set {key}.<key>=value)")
            out[k] = merge(out.get(k) or {}, v, schema[k], key + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_layer(config: dict, update: dict, schema: dict) -> dict:
    """Merge one layer (file or override); options belong to a model, so a layer that picks another
    model starts from no options (plus the ones it gives)."""
    model = (update or {}).get("model")
    if isinstance(model, dict) and "name" in model and model["name"] != config["model"]["name"]:
        config = copy.deepcopy(config)
        config["model"]["options"] = {}
    return merge(config, update, schema)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {_short(text)} is not of the form key.sub=value (e.g. train.epochs=3)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {_short(text)}: bad key {_short(key)}")
    try:
        value = bounded_yaml.safe_load(raw, f"override {key}=...") if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {_short(text)}: value is not valid YAML ({_yaml_problem(e)})") from None
    except bounded_yaml.YamlLimitError as e:
        raise ConfigError(str(e)) from None
    return key.split("."), value


def apply_overrides(config: dict, overrides: Iterable[str], schema: dict) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        config = _merge_layer(config, nested, schema)
    return config


def _yaml_problem(e: Exception) -> str:
    """A YAML error in one line: where and what."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(e).split())


def load_yaml(path: str | os.PathLike) -> dict:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = bounded_yaml.load_file(path)
    except bounded_yaml.YamlLimitError as e:
        raise ConfigError(str(e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (YAML) file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections (run, data, model, ...)")
    return data


def load_config(config_file: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                validate_names: bool = True) -> Config:
    """Defaults, then ``config_file``, then ``overrides``; validated. Raises :class:`ConfigError`."""
    schema = default_config()
    config = copy.deepcopy(schema)
    if config_file is not None:
        try:
            config = _merge_layer(config, load_yaml(config_file), schema)
        except ConfigError as e:  # name the file once (load_yaml's own messages start with it)
            text = str(e)
            raise ConfigError(text if text.startswith(os.fspath(config_file)) else f"{config_file}: {text}") from None
    config = apply_overrides(config, overrides, schema)
    try:
        return validate(config, schema, validate_names=validate_names)
    except ConfigError as e:  # a bad value from the file: say which file (once)
        text = str(e)
        if config_file is None or os.fspath(config_file) in text:
            raise
        where = f"{config_file}" + (" with the command-line overrides" if overrides else "")
        raise ConfigError(f"{where}: {text}") from None


def from_dict(update: dict | Config, validate_names: bool = True) -> Config:
    """A resolved config from a (partial) dict merged over the defaults (used by ``run_training``)."""
    if isinstance(update, Config):
        update = update.to_dict()
    schema = default_config()
    return validate(_merge_layer(schema, update, schema), schema, validate_names=validate_names)


def _choice(key: str, value, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ConfigError(f"config key {_short(key)}: unknown value {_short(value)}; valid: {', '.join(map(str, valid))}")


def dataset_names() -> list[str]:
    from landseg.data.layouts import DATASETS

    return sorted(set(DATASETS) | {"synthetic"})


def validate(config: dict, schema: dict | None = None, validate_names: bool = True) -> Config:
    """Check types, ranges and names; fill dataset-dependent defaults (layout, class map)."""
    schema = default_config() if schema is None else schema
    if isinstance(config, Config):
        config = config.to_dict()
    # Unknown keys (a config dict built in Python skips merge()).
    merge(schema, config, schema)
    config = copy.deepcopy(config)
    check_types(config)  # types and fixed choices, from the typed sections' annotations
    c = config
    if c["lr_find"]["min_lr"] >= c["lr_find"]["max_lr"]:
        raise ConfigError("config keys 'lr_find.min_lr' must be below 'lr_find.max_lr'")
    bands = c["data"]["bands"]  # its type (a count or a list of integers) is checked already
    if (isinstance(bands, int) and bands < 1) or (isinstance(bands, list) and (not bands or min(bands) < 1)):
        raise ConfigError(f"config key 'data.bands': {_short(bands)} is not valid; give a band count (3) or a list of "
                          "1-based band numbers of the rasters (e.g. [4, 3, 2, 8])")
    norm = c["data"]["normalisation"]
    if norm not in ("auto", "none") and not norm.endswith(".json"):
        raise ConfigError(f"config key 'data.normalisation': {_short(norm)} is not valid; valid: auto, none, or a band "
                          "statistics .json (landseg data check --band-stats FILE)")
    if "ignore_index" in c["loss"]["options"]:
        raise ConfigError(f"config key 'loss.options.ignore_index': {REMOVED['loss.ignore_index']}")
    hist = c["data"]["hist_reference"]
    if hist not in HIST_MODES and not hist.endswith(".npy"):
        raise ConfigError(f"config key 'data.hist_reference': {_short(hist)} is not valid; valid: none, train_mean, "
                          "or a path to a saved reference .npy")
    if c["run"]["name"] is not None and (not c["run"]["name"] or "/" in c["run"]["name"] or c["run"]["name"] in (".", "..")):
        raise ConfigError(f"config key 'run.name' must be a plain folder name, got {_short(c['run']['name'])}")
    if validate_names:
        _validate_names(c)
    return Config.from_dict(c)


def _validate_names(c: dict) -> None:
    from landseg import classmaps

    from landseg.data.layouts import LAYOUTS, resolve_dataset

    d = c["data"]
    if d["name"] not in dataset_names() and not (d["classmap"] and d["layout"]):
        raise ConfigError(f"config key 'data.name': {_short(d['name'])} is not a built-in dataset "
                          f"({', '.join(dataset_names())}); for your own data give any name together with "
                          "data.classmap (a class map .yaml or class_dict.csv) and data.layout "
                          f"({', '.join(LAYOUTS)})")

    c["data"]["classmap"], c["data"]["layout"] = resolve_dataset(c["data"]["name"], layout=c["data"]["layout"],
                                                                 classmap=c["data"]["classmap"])

    _choice("data.layout", c["data"]["layout"], sorted(LAYOUTS))
    cm = c["data"]["classmap"]
    if cm not in classmaps.available_classmaps() and not str(cm).lower().endswith((".yaml", ".yml", ".csv")):
        raise ConfigError(f"config key 'data.classmap': unknown class map {_short(cm)}; valid: "
                          f"{', '.join(classmaps.available_classmaps())}, or a path to a .yaml / class_dict.csv")

    from landseg.models import available_models

    _choice("model.name", c["model"]["name"], available_models())
    _check_model_options(c["model"]["name"], c["model"]["options"])

    if c["train"]["freeze_encoder"]:
        from landseg.models import get_model_spec

        if "freeze_encoder" not in get_model_spec(c["model"]["name"]).options:
            raise ConfigError(f"config key 'train.freeze_encoder': model {_short(c['model']['name'])} has no pretrained "
                              "encoder to freeze; models that have one: " + ", ".join(
                                  n for n, o in available_models().items() if "freeze_encoder" in o))
    if "freeze_encoder" in c["model"]["options"]:
        raise ConfigError("set train.freeze_encoder (with train.unfreeze_at_epoch), not model.options.freeze_encoder")

    from landseg.losses import available_losses

    _choice("loss.name", c["loss"]["name"], available_losses())


def _check_model_options(name: str, options: dict) -> None:
    """Unknown model options stop here, when the model registry says which it accepts."""
    from landseg.models import get_model_spec

    valid = set(get_model_spec(name).options or ())
    if not valid:
        return
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"config key 'model.options': model {_short(name)} has no option(s) {unknown}; "
                          f"valid: {', '.join(sorted(valid))}")
