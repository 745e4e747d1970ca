"""Whole-scene inference: tiling and blending (:mod:`.tiling`), test-time augmentation (:mod:`.tta`),
the sliding-window predictor (:mod:`.predictor`), ensembles (:mod:`.ensemble`), and the stages built
on them: mapping a folder (:mod:`.predict`), scoring (:mod:`.evaluate`) and pseudo-labelling
(:mod:`.pseudolabel`). Their command lines are in :mod:`landseg.cli`."""

from landseg.inference.ensemble import ensemble_classmap, load_ensemble, load_entry
from landseg.inference.predictor import (ModelEntry, Predictor, SceneResult, Timing, check_same_classes,
                                         match_to_reference, prepare)
from landseg.inference.tiling import (DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE, WINDOWS,
                                      TileGrid, make_grid, pad_image, ramp, round_up, tile_positions, window_1d)
from landseg.inference.tta import IDENTITY, TTA_MODES, Transform, get_tta

__all__ = ["ensemble_classmap", "load_ensemble", "load_entry", "ModelEntry", "Predictor", "SceneResult", "Timing",
           "check_same_classes", "match_to_reference", "prepare", "DEFAULT_BATCH", "DEFAULT_OVERLAP",
           "DEFAULT_TILE", "WINDOWS", "TileGrid", "make_grid", "pad_image", "ramp",
           "round_up", "tile_positions", "window_1d", "IDENTITY", "TTA_MODES", "Transform", "get_tta"]
