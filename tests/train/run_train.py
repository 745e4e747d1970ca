"""``python tests/train/run_train.py ARGS`` = ``python -m landseg.train ARGS`` with the test-only tiny
model registered (see tiny_model.py). With ``SLOW_FROM_EPOCH=N`` every batch from epoch N (0-based) on
takes an extra second and the first such batch writes ``<run.output_dir>/slow`` - so a test can
SIGKILL the process from outside in the middle of that epoch, as a pre-empted machine would."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model  # noqa: E402

tiny_model.register_tiny()

if os.environ.get("SLOW_FROM_EPOCH"):
    import keras

    import landseg.training as training

    class SlowDown(keras.callbacks.Callback):
        def __init__(self, epoch, marker):
            super().__init__()
            self.from_epoch, self.marker, self.epoch = epoch, marker, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch >= self.from_epoch:
                Path(self.marker).touch()
                time.sleep(1.0)

    _run_training = training.run_training

    def run_training(config, callbacks=None, **kw):
        slow = SlowDown(int(os.environ["SLOW_FROM_EPOCH"]), Path(config.run.output_dir) / "slow")
        return _run_training(config, callbacks=[slow, *(callbacks or [])], **kw)

    training.run_training = run_training

from landseg.cli.train import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
