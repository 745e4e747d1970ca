"""TensorFlow's CPU threading, set by landseg before TensorFlow creates its thread pools.

Why: with TensorFlow's own defaults (intra-op = inter-op = the host's schedulable cores) a
2-core machine trains at full speed in some processes and on one core (half the speed) in
others, by chance (issue 14: 2.9 vs 1.6 img/s for the same UNet, 1.9 vs 1.0 cores used).
One inter-op thread and intra-op threads = the cores this process may really use was meant to
remove that spread; measured, it does not (2 of 8 runs still on one core, experiments/results/
threads.md; the cause is tf.data's autotuner holding the end of a fit, see data/arrays.py, whose
``from_arrays`` turns it off for in-memory batches: 6 of 6 runs on both cores), but it does size the
pools from the CPU affinity and cgroup quota, not the host.

``import landseg`` calls :func:`configure_threads` (cheap: it reads a few files, it does not
import TensorFlow). It

* counts the usable cores: the CPU affinity mask (``os.sched_getaffinity``), capped by the
  cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``), rounded up;
* leaves alone what the user chose: ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS``
  in the environment, or ``tf.config.threading.set_*`` already called before ``import landseg``;
* otherwise sets both environment variables (TensorFlow's C++ runtime reads them once, when
  its pools are created) and calls ``tf.config.threading.set_{intra,inter}_op_parallelism_threads``
  as soon as TensorFlow is imported (now, if it already is; else right after its import),
  so ``tf.config.threading.get_*`` report the values in use.

Overrides, strongest first: explicit arguments to :func:`configure_threads` (the training
config's ``run.intra_op_threads`` / ``run.inter_op_threads`` land here), the environment
variables ``LANDSEG_INTRA_OP_THREADS`` / ``LANDSEG_INTER_OP_THREADS`` (set them to ``tf`` to
keep TensorFlow's own defaults), ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS``,
then the automatic choice. Once TensorFlow's runtime has started, nothing can change them any
more; :func:`configure_threads` then reports the values in force and logs a warning.
"""

from __future__ import annotations

import importlib.abc
import logging
import math
import os
import sys
from dataclasses import dataclass

from landseg.cgroups import cpu_limit as cgroup_cpu_limit

log = logging.getLogger(__name__)

ENV_INTRA, ENV_INTER = "LANDSEG_INTRA_OP_THREADS", "LANDSEG_INTER_OP_THREADS"
TF_ENV_INTRA, TF_ENV_INTER = "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"


class ThreadingError(ValueError):
    """A thread count that is not a positive integer."""


@dataclass(frozen=True)
class Threading:
    intra_op: int | None  # None: TensorFlow's own default
    inter_op: int | None
    cores: int            # usable cores found
    source: str           # where the values came from (for logs and benchmarks)


# ---------------------------------------------------------------------- usable cores
def usable_cores() -> int:
    """Cores this process may run on: the affinity mask, capped by the cgroup quota (rounded up)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.ceil(limit - 1e-9)))
    return max(1, n)


def default_threading(cores: int) -> tuple[int, int]:
    """(intra-op, inter-op) for ``cores`` usable cores: every core inside an op, one op at a time
    (a segmentation network's graph is a chain; a second inter-op thread only lets two ops fight
    for the same cores). Two inter-op threads from 8 cores on (not measured here: a guess)."""
    return cores, (1 if cores < 8 else 2)


# ---------------------------------------------------------------------- choosing
def _parse(value, what: str) -> int | None:
    """A positive int, or None for 'keep TensorFlow's default' ('tf' / 'default')."""
    if value is None:
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("tf", "default", "tensorflow"):
            return None
        try:
            value = int(v)
        except ValueError:
            raise ThreadingError(f"{what} must be a positive integer or 'tf', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ThreadingError(f"{what} must be a positive integer or 'tf', got {value!r}")
    return value


_UNSET = object()


def resolve(intra_op=_UNSET, inter_op=_UNSET, environ=None) -> Threading:
    """The thread counts landseg would use (no side effects)."""
    env = os.environ if environ is None else environ
    cores = usable_cores()
    auto_intra, auto_inter = default_threading(cores)
    out, sources = [], []
    for arg, env_name, tf_env, auto, what in ((intra_op, ENV_INTRA, TF_ENV_INTRA, auto_intra, "intra-op threads"),
                                              (inter_op, ENV_INTER, TF_ENV_INTER, auto_inter, "inter-op threads")):
        if arg is not _UNSET and arg is not None and str(arg).lower() != "auto":
            out.append(_parse(arg, what))
            sources.append("argument")
        elif env.get(env_name, "").strip() and env[env_name].strip().lower() != "auto":
            out.append(_parse(env[env_name], f"{env_name}"))
            sources.append(env_name)
        elif env.get(tf_env, "").strip():
            out.append(_parse(env[tf_env], tf_env))
            sources.append(tf_env)
        else:
            out.append(auto)
            sources.append(f"auto ({cores} usable core{'s' if cores != 1 else ''})")
    return Threading(out[0], out[1], cores, "; ".join(f"{k}: {s}" for k, s in zip(("intra", "inter"), sources)))


# ---------------------------------------------------------------------- applying
_pending: Threading | None = None
_applied: Threading | None = None


def _tf_context():
    from tensorflow.python.eager import context

    return context.context()


def _user_set_in_tf(ctx) -> tuple[bool, bool]:
    return (getattr(ctx, "_intra_op_parallelism_threads", None) is not None,
            getattr(ctx, "_inter_op_parallelism_threads", None) is not None)


def _apply_to_tf(t: Threading, first: bool, only: tuple[bool, bool] = (True, True)) -> Threading:
    """Set the values in TensorFlow's (not yet started) context; returns what is in force."""
    global _applied
    ctx = _tf_context()
    started = getattr(ctx, "_context_handle", None) is not None
    if started:
        in_force = Threading(ctx.intra_op_parallelism_threads or None, ctx.inter_op_parallelism_threads or None,
                             t.cores, "TensorFlow already started")
        if (in_force.intra_op, in_force.inter_op) != (t.intra_op, t.inter_op) and not first:
            log.warning(f"TensorFlow's runtime already started; its threading (intra-op {in_force.intra_op}, "
                        f"inter-op {in_force.inter_op}) can no longer change to {t.intra_op} / {t.inter_op}")
        _applied = in_force
        return in_force
    import tensorflow as tf

    user_intra, user_inter = _user_set_in_tf(ctx) if first and _applied is None else (not only[0], not only[1])
    if t.intra_op is not None and not user_intra:
        tf.config.threading.set_intra_op_parallelism_threads(t.intra_op)
    if t.inter_op is not None and not user_inter:
        tf.config.threading.set_inter_op_parallelism_threads(t.inter_op)
    _applied = Threading(tf.config.threading.get_intra_op_parallelism_threads() or None,
                         tf.config.threading.get_inter_op_parallelism_threads() or None, t.cores,
                         t.source + ("; intra kept from tf.config" if user_intra else "")
                         + ("; inter kept from tf.config" if user_inter else ""))
    return _applied


class _AfterTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs :func:`_apply_to_tf` right after ``import tensorflow`` finishes (once), before any
    TensorFlow op can start its runtime."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or _pending is None:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # one shot: find the real spec with the other finders
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        self._real = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        self._real.exec_module(module)
        module.__spec__.loader = self._real
        if _pending is not None:
            try:
                _apply_to_tf(_pending, first=True)
            except Exception as e:  # noqa: BLE001 - threading must never break an import
                log.debug(f"landseg threading not applied: {e}")


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterTensorFlowImport)]


def configure_threads(intra_op=_UNSET, inter_op=_UNSET, *, first: bool = False) -> Threading:
    """Choose TensorFlow's intra-/inter-op thread counts (see the module docstring) and apply them
    before TensorFlow starts its runtime. Returns the values chosen (or, if TensorFlow already
    started, those in force). ``None`` / ``'auto'`` = the automatic choice; ``'tf'`` = TensorFlow's own.

    Raises :class:`ThreadingError` on a value that is not a positive integer.
    """
    global _pending
    t = resolve(intra_op, inter_op)
    # a later call changes only what it names (a user's tf.config.threading call stays otherwise)
    only = (True, True) if first else tuple(v is not _UNSET and v is not None and str(v).lower() != "auto"
                                            for v in (intra_op, inter_op))
    for name, value, change in ((TF_ENV_INTRA, t.intra_op, only[0]), (TF_ENV_INTER, t.inter_op, only[1])):
        if value is not None and change:
            os.environ[name] = str(value)
    if "tensorflow" in sys.modules and hasattr(sys.modules["tensorflow"], "config"):
        _pending = None
        _remove_hook()
        return _apply_to_tf(t, first, only)
    _pending = t
    if not any(isinstance(f, _AfterTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTensorFlowImport())
    return t


def current() -> Threading | None:
    """What landseg applied to TensorFlow (None before TensorFlow was imported)."""
    return _applied


def configure_at_import() -> None:
    """``import landseg``'s call: never raises (a bad LANDSEG_* value is logged, TF's defaults kept)."""
    if os.environ.get(ENV_INTRA, "").strip().lower() == "tf" and os.environ.get(ENV_INTER, "").strip().lower() == "tf":
        return
    try:
        configure_threads(first=True)
    except ThreadingError as e:
        log.warning(f"landseg: {e}; TensorFlow's default threading is kept")
    except Exception as e:  # noqa: BLE001 - never break `import landseg`
        log.debug(f"landseg threading not configured: {e}")
