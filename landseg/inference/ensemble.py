"""Ensembles: load saved models with their run artifacts, check they agree, and pick the class map."""

from __future__ import annotations

import os
from typing import Sequence

from landseg.inference.predictor import ModelEntry, check_same_classes

# ----------------------------------------------------------------------------- loading
def load_entry(path: str | os.PathLike, weight: float = 1.0) -> ModelEntry:
    """Load a saved model and its training run's artifact (:func:`landseg.runs.load_run`)."""
    from landseg.model_files import check_keras_file, load_keras_model
    from landseg.models.common import size_multiple_of
    from landseg.models.fold import fold_batchnorm
    from landseg.runs import load_run

    path = os.fspath(path)
    check_keras_file(path)
    run = load_run(path)
    model = fold_batchnorm(load_keras_model(path))  # inference only: BatchNorm never learns here
    if run is None:
        return ModelEntry(model, float(weight), name=path)
    return ModelEntry(model, float(weight), name=path, hist_reference=run.load_hist_reference(),
                      size_multiple=size_multiple_of(model, run.size_multiple),
                      logits=bool(run.model_options.get("logits", False)), run=run)


def check_weights(weights: Sequence[float], n_models: int | None = None) -> None:
    """Ensemble weights: one per model, each finite and >= 0, not all 0 (ValueError saying so)."""
    import math

    from landseg.errors import OptionError

    if n_models is not None and len(weights) != n_models:
        raise OptionError("weights", f"{len(weights)} weight(s) for {n_models} model(s); give one weight per model")
    bad = [w for w in weights if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
    if bad:
        raise OptionError("weights", f"{bad[0]!r} is not valid; valid: finite numbers >= 0 (one per model, not all 0)")
    if not any(w > 0 for w in weights):
        raise OptionError("weights", "all weights are 0; at least one model needs a weight > 0")


def load_ensemble(paths: Sequence[str], weights: Sequence[float] | None = None) -> list[ModelEntry]:
    if not paths:
        raise ValueError("no models given")
    if weights is None:
        weights = [1.0] * len(paths)
    check_weights(list(weights), len(paths))
    entries = [load_entry(p, w) for p, w in zip(paths, weights)]
    check_same_classes(entries)
    return entries


def ensemble_classmap(entries: Sequence[ModelEntry], dataset: str | None = None):
    """Class map for outputs: ``--dataset`` (a dataset or class map name) if given, else the one
    saved with the first model's run."""
    from landseg.data.layouts import resolve_classmap

    if dataset:
        cm = resolve_classmap(dataset)
    else:
        cm = next((e.run.classmap for e in entries if e.run is not None), None)
        if cm is None:
            from landseg.errors import OptionError

            raise OptionError("dataset", "no class map: the models have no run artifact beside them; name a dataset "
                              "or class map")
    n = entries[0].num_classes
    if cm.num_classes != n:
        raise ValueError(f"class map {cm.name!r} has {cm.num_classes} classes but the models predict {n}")
    return cm
