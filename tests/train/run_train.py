"""``python tests/train/run_train.py ARGS`` = ``python -m landseg.train ARGS`` with the test-only tiny
model registered (see tiny_model.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model  # noqa: E402

tiny_model.register_tiny()

from landseg.cli.train import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
