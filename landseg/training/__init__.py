"""Training: set-up from a config (:mod:`.setup`), the fit loop with resume (:mod:`.fit`), the end-of-run
reports (:mod:`.finish`), callbacks (:mod:`.callbacks`), run folders (:mod:`.runs`), the learning-rate
finder (:mod:`.lr_finder`) and self-training rounds (:mod:`.self_train`). Command lines: :mod:`landseg.cli`."""

from landseg.training.fit import TrainingDiverged, run_training

__all__ = ["TrainingDiverged", "run_training"]
