"""The typed shape of a run config: one dataclass per YAML section.

The annotations are the single statement of each key's type and fixed choices (``Literal``);
the values live in ``configs/default.yaml``, whose comments users read. :func:`check_types`
walks a merged config dict against these annotations, so a wrong type stops with the key and
what is valid; :meth:`Config.from_dict` then gives the stages attribute access, so a key that
does not exist fails where it is read (``cfg.train.epoch`` names the valid keys).
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union


class ConfigError(ValueError):
    """A config key or value that landseg cannot use; the message lists what is valid."""


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 6, 6, 3


def short(value) -> str:
    """``repr(value)`` cut to a readable length: a message must stay one line whatever the value."""
    return _REPR.repr(value)


class Section:
    """Base of every section: a misspelt key names the valid ones."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        valid = ", ".join(f.name for f in dataclasses.fields(self))
        raise AttributeError(f"config section {type(self).__name__} has no key {name!r}; valid keys: {valid}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Range:
    """The values a number may take (``Annotated[int, Range(1, 100)]``): checked with the type, before any
    folder is made, so a value that cannot work (10**30 epochs) stops with the key and the range."""

    lo: float
    hi: float
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False  # hi itself excluded

    def __contains__(self, value) -> bool:
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        return f"{'>' if self.lo_open else '>='} {self.lo:g} and {'<' if self.hi_open else '<='} {self.hi:g}"


def bounded(kind, lo, hi, lo_open: bool = False, hi_open: bool = False):
    return Annotated[kind, Range(lo, hi, lo_open, hi_open)]


Seed = bounded(int, 0, 2**32 - 1)
Epochs = bounded(int, 1, 100_000)           # more than any run finishes
Steps = bounded(int, 1, 10_000_000)
Patience = bounded(int, 0, 100_000)
Fraction = bounded(float, 0, 1)
Threads = Union[bounded(int, 1, 1024), Literal["tf"], None]


@dataclass
class RunSection(Section):
    name: str | None
    output_dir: str
    tensorboard_dir: str
    resume: Literal["auto", "never"]
    seed: Seed
    intra_op_threads: Threads
    inter_op_threads: Threads


@dataclass
class SyntheticSection(Section):
    n_images: bounded(int, 2, 100_000)
    size: bounded(int, 16, 8192)


@dataclass
class DataSection(Section):
    name: str
    data_dir: str
    layout: str | None
    classmap: str | None
    bands: bounded(int, 1, 64) | list[bounded(int, 1, 10_000)]
    normalisation: str
    unknown_mask_values: Literal["error", "ignore"]
    val_fraction: bounded(float, 0, 1, lo_open=True, hi_open=True)
    split_seed: Seed
    split_by_group: bool
    val_groups: list[str]
    crop_size: bounded(int, 16, 8192)        # pixels per side; the model's size multiple is checked with the model
    hist_reference: str
    flips: bool
    rotate90: bool
    rare_class_crops: bool
    color_jitter: bounded(float, 0, 5)
    scale_jitter: bounded(float, 0, 1)
    blur: Fraction
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
    lr: bounded(float, 0, 10, lo_open=True)
    weight_decay: bounded(float, 0, 1)
    momentum: bounded(float, 0, 1, hi_open=True)
    clipnorm: bounded(float, 0, 1e6, lo_open=True) | None


@dataclass
class ScheduleSection(Section):
    name: Literal["constant", "cosine", "one_cycle", "reduce_on_plateau"]
    warmup_epochs: bounded(float, 0, 100_000)
    min_lr_fraction: Fraction
    plateau_factor: bounded(float, 0, 1, lo_open=True, hi_open=True)
    plateau_patience: bounded(int, 1, 100_000)


@dataclass
class TrainSection(Section):
    epochs: Epochs
    batch_size: bounded(int, 1, 4096)
    steps_per_epoch: Steps | None
    val_steps: Steps | None
    grad_accum_steps: bounded(int, 1, 1024)
    early_stopping_patience: Patience
    mixed_precision: bool | Literal["float16", "bfloat16"]
    jit_compile: bool | Literal["auto"]
    strategy: Literal["default", "mirrored", "multi_worker"]
    resume_from: str | None
    init_from: str | None
    freeze_encoder: bool
    unfreeze_at_epoch: Patience | None
    lr_find: bool
    num_preview: bounded(int, 0, 64)
    verbose: Literal[0, 1, 2]


@dataclass
class LrFindSection(Section):
    min_lr: bounded(float, 0, 100, lo_open=True)
    max_lr: bounded(float, 0, 100, lo_open=True)
    steps: bounded(int, 1, 100_000)


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
    return typing.get_type_hints(cls, include_extras=True)


def _unwrap(hint) -> tuple[Any, Range | None]:
    """(the type, its Range or None) of a possibly ``Annotated`` hint."""
    if typing.get_origin(hint) is Annotated:
        base, *meta = typing.get_args(hint)
        return base, next((m for m in meta if isinstance(m, Range)), None)
    return hint, None


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


def _describe(hint, plural: bool = False) -> str:
    names = {int: "integer", float: "number", bool: "true/false", str: "string", type(None): "null"}
    parts = []
    for arg in _union_args(hint):
        arg, rng = _unwrap(arg)
        origin = typing.get_origin(arg)
        if origin is Literal:
            parts.append(", ".join(map(str, typing.get_args(arg))))
        elif origin is list:
            parts.append(f"list of {_describe(typing.get_args(arg)[0], plural=True)}")
        elif origin is dict or arg is dict:
            parts.append("a mapping")
        else:
            name = names.get(arg, getattr(arg, "__name__", str(arg)))
            parts.append(name + ("s" if plural and arg in (int, float, str) else "") + (f" {rng}" if rng else ""))
    return " or ".join(dict.fromkeys(parts))


def _as_number(value):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; accept it where a number is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _as_names(value, args: tuple):
    """YAML reads a name such as dida's group ``121`` as an integer; where only strings (or a list of
    strings) fit, an integer is that name."""
    bases = [_unwrap(a)[0] for a in args]
    if int in bases or float in bases:
        return value
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if str in bases and is_int(value):
        return str(value)
    if list[str] in bases and isinstance(value, list):
        return [str(v) if is_int(v) else v for v in value]
    return value


def _matches(value, hint) -> bool:
    """Whether ``value`` has the type of ``hint`` (ranges are checked apart, to say what is wrong)."""
    hint, _ = _unwrap(hint)
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


def _out_of_range(value, hint) -> tuple[Any, Range] | None:
    """(the offending number, its range) when ``value`` (of type ``hint``) lies outside a declared range."""
    base, rng = _unwrap(hint)
    if typing.get_origin(base) is list:
        return next((bad for v in value if (bad := _out_of_range(v, typing.get_args(base)[0]))), None)
    if rng is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value not in rng:
        return value, rng
    return None


def _check_value(key: str, value, hint):
    """``value`` if it fits ``hint`` (numbers written as strings are read as numbers, integers where only
    strings fit as names), inside its range; else ConfigError naming the key and what is valid."""
    args = _union_args(hint)
    if float in [_unwrap(a)[0] for a in args] and str not in args:
        value = _as_number(value)
    value = _as_names(value, args)
    matched = next((arg for arg in args if _matches(value, arg)), None)
    if matched is not None:
        bad = _out_of_range(value, matched)
        if bad is not None:
            raise ConfigError(f"config key {key!r}: {short(bad[0])} is out of range; it must be {bad[1]}")
        return value
    literals = [c for arg in args if typing.get_origin(arg) is Literal for c in typing.get_args(arg)]
    if literals and isinstance(value, str) and all(isinstance(c, str) for c in literals):
        raise ConfigError(f"config key {key!r}: unknown value {short(value)}; valid: {_describe(hint)}")
    raise ConfigError(f"config key {key!r} must be {_describe(hint)}, got {short(value)}")


def check_types(d: dict, cls: type = Config, where: str = "") -> None:
    """Check (and normalise numbers in) a merged config dict against the sections' annotations."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key, hint = f"{where}{f.name}", hints[f.name]
        if f.name not in d:
            raise ConfigError(f"config key {key!r} is missing")
        if isinstance(hint, type) and issubclass(hint, Section):
            if not isinstance(d[f.name], dict):
                raise ConfigError(f"config key {key!r} is a section; give it a mapping, not {short(d[f.name])}")
            check_types(d[f.name], hint, key + ".")
        else:
            d[f.name] = _check_value(key, d[f.name], hint)
