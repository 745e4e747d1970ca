"""The typed shape of a run config: one dataclass per YAML section.

The annotations are the single statement of each key's type and fixed choices (``Literal``);
the values live in ``configs/default.yaml``, whose comments users read. :func:`check_types`
walks a merged config dict against these annotations, so a wrong type stops with the key and
what is valid; :meth:`Config.from_dict` then gives the stages attribute access, so a key that
does not exist fails where it is read (``cfg.train.epoch`` names the valid keys).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union


class ConfigError(ValueError):
    """A config key or value that landseg cannot use; the message lists what is valid."""


class Section:
    """Base of every section: a misspelt key names the valid ones."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        valid = ", ".join(f.name for f in dataclasses.fields(self))
        raise AttributeError(f"config section {type(self).__name__} has no key {name!r}; valid keys: {valid}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


Threads = Union[int, Literal["tf"], None]


@dataclass
class RunSection(Section):
    name: str | None
    output_dir: str
    tensorboard_dir: str
    resume: Literal["auto", "never"]
    seed: int
    intra_op_threads: Threads
    inter_op_threads: Threads


@dataclass
class SyntheticSection(Section):
    n_images: int
    size: int


@dataclass
class DataSection(Section):
    name: str
    data_dir: str
    layout: str | None
    classmap: str | None
    bands: int | list[int]
    normalisation: str
    unknown_mask_values: Literal["error", "ignore"]
    val_fraction: float
    split_seed: int
    split_by_group: bool
    crop_size: int
    hist_reference: str
    flips: bool
    rotate90: bool
    rare_class_crops: bool
    color_jitter: float
    pseudo_label_dirs: list[str]
    cache: bool | str
    synthetic: SyntheticSection


@dataclass
class ModelSection(Section):
    name: str
    options: dict[str, Any] = field(default_factory=dict)  # free-form: checked by the model registry


@dataclass
class LossSection(Section):
    name: str
    options: dict[str, Any] = field(default_factory=dict)  # free-form: checked by the loss


@dataclass
class OptimizerSection(Section):
    name: Literal["adam", "adamw", "sgd"]
    lr: float
    weight_decay: float
    momentum: float
    clipnorm: float | None


@dataclass
class ScheduleSection(Section):
    name: Literal["constant", "cosine", "one_cycle", "reduce_on_plateau"]
    warmup_epochs: float
    min_lr_fraction: float
    plateau_factor: float
    plateau_patience: int


@dataclass
class TrainSection(Section):
    epochs: int
    batch_size: int
    steps_per_epoch: int | None
    val_steps: int | None
    grad_accum_steps: int
    early_stopping_patience: int
    mixed_precision: bool | Literal["float16", "bfloat16"]
    jit_compile: bool | Literal["auto"]
    strategy: Literal["default", "mirrored", "multi_worker"]
    resume_from: str | None
    init_from: str | None
    freeze_encoder: bool
    unfreeze_at_epoch: int | None
    lr_find: bool
    num_preview: int
    verbose: int


@dataclass
class LrFindSection(Section):
    min_lr: float
    max_lr: float
    steps: int


@dataclass
class Config(Section):
    """A resolved run config (what ``load_config`` returns and a run saves as ``config.yaml``)."""

    run: RunSection
    data: DataSection
    model: ModelSection
    loss: LossSection
    optimizer: OptimizerSection
    schedule: ScheduleSection
    train: TrainSection
    lr_find: LrFindSection

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """A typed config from a checked dict (see ``landseg.config.validate``)."""
        return _build(cls, d)


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls, d: dict):
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        value = d[f.name]
        hint = hints[f.name]
        if isinstance(hint, type) and issubclass(hint, Section):
            value = _build(hint, value)
        kwargs[f.name] = value
    return cls(**kwargs)


def choices(cls: type, key: str) -> tuple:
    """The fixed choices of a ``Literal`` key, e.g. ``choices(OptimizerSection, "name")``."""
    out: list = []
    for arg in _union_args(_hints(cls)[key]):
        if typing.get_origin(arg) is Literal:
            out.extend(typing.get_args(arg))
    return tuple(out)


def _union_args(hint) -> tuple:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return tuple(a for arg in typing.get_args(hint) for a in _union_args(arg))
    return (hint,)


def _describe(hint) -> str:
    names = {int: "integer", float: "number", bool: "true/false", str: "string", type(None): "null"}
    parts = []
    for arg in _union_args(hint):
        origin = typing.get_origin(arg)
        if origin is Literal:
            parts.append(", ".join(map(str, typing.get_args(arg))))
        elif origin is list:
            parts.append(f"list of {_describe(typing.get_args(arg)[0])}s")
        elif origin is dict or arg is dict:
            parts.append("a mapping")
        else:
            parts.append(names.get(arg, getattr(arg, "__name__", str(arg))))
    return " or ".join(dict.fromkeys(parts))


def _as_number(value):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; accept it where a number is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # YAML true is not a number here
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _check_value(key: str, value, hint):
    """``value`` if it fits ``hint`` (numbers written as strings are read as numbers); else ConfigError."""
    args = _union_args(hint)
    if float in args and str not in args:
        value = _as_number(value)
    if any(_matches(value, arg) for arg in args):
        return value
    literals = [c for arg in args if typing.get_origin(arg) is Literal for c in typing.get_args(arg)]
    if literals and isinstance(value, str) and all(isinstance(c, str) for c in literals):
        raise ConfigError(f"config key {key!r}: unknown value {value!r}; valid: {_describe(hint)}")
    raise ConfigError(f"config key {key!r} must be {_describe(hint)}, got {value!r}")


def check_types(d: dict, cls: type = Config, where: str = "") -> None:
    """Check (and normalise numbers in) a merged config dict against the sections' annotations."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key, hint = f"{where}{f.name}", hints[f.name]
        if f.name not in d:
            raise ConfigError(f"config key {key!r} is missing")
        if isinstance(hint, type) and issubclass(hint, Section):
            if not isinstance(d[f.name], dict):
                raise ConfigError(f"config key {key!r} is a section; give it a mapping, not {d[f.name]!r}")
            check_types(d[f.name], hint, key + ".")
        else:
            d[f.name] = _check_value(key, d[f.name], hint)
