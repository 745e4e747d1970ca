"""Second phase from a checkpoint (init_from) and freezing / unfreezing the encoder on schedule."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from landseg.training import run_training  # noqa: E402


class Snapshots(keras.callbacks.Callback):
    """conv1's kernel at the start of training and at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.start, self.epochs = None, []

    def _kernel(self):
        return np.array(self.model.get_layer("conv1").kernel)

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = self._kernel()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._kernel())


def test_lr_find_flag_then_init_from_then_freeze_and_unfreeze(tiny_config):
    import csv
    import json

    from landseg.training.callbacks import lr_at
    from landseg.config import from_dict

    c1 = tiny_config(run={"name": "phase1"}, train={"epochs": 1, "lr_find": True}, lr_find={"steps": 8})
    first = run_training(c1)
    found = json.loads((first / "lr_find.json").read_text())
    assert (first / "lr_find.png").is_file() and len(found["lrs"]) >= 3
    assert json.loads((first / "state.json").read_text())["lr_found"] == found["suggestion"]
    with open(first / "history.csv") as f:
        row = next(csv.DictReader(f))
    # the run trained with the finder's suggestion: the logged lr follows the schedule from it
    assert float(row["lr"]) == pytest.approx(lr_at(from_dict(c1).schedule, found["suggestion"], 2, 3, 3), rel=1e-5)
    best = keras.models.load_model(first / "best.keras", compile=False)

    snap = Snapshots()
    run_training(tiny_config(run={"name": "phase2"}, optimizer={"lr": 0.01},
                             train={"epochs": 2, "init_from": str(first / "best.keras"), "freeze_encoder": True,
                                    "unfreeze_at_epoch": 1}), callbacks=[snap])
    # phase 2 starts from phase 1's best weights
    np.testing.assert_array_equal(snap.start, np.array(best.get_layer("conv1").kernel))
    # epoch 1: encoder frozen (unchanged); epoch 2: unfrozen (trained)
    np.testing.assert_array_equal(snap.epochs[0], snap.start)
    assert not np.allclose(snap.epochs[1], snap.epochs[0])
