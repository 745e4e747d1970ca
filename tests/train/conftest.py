"""A tiny training config shared by the run-level tests: 12 synthetic 64 px scenes, 32 px crops,
a very small model, 2 epochs of 3 steps: seconds per run on 2 CPU cores."""

import copy

import pytest

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_model  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def tiny_test_net():
    """tiny_test_net is in the model registry only while tests/train runs."""
    tiny_model.register_tiny()
    yield tiny_model.NAME
    tiny_model.unregister_tiny()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from landseg.data.synthetic import ensure_synthetic_dataset

    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "data", n_images=12, size=64)


@pytest.fixture
def tiny_config(tiny_data, tmp_path):
    def make(**sections):
        c = {
            "run": {"name": "tiny", "output_dir": str(tmp_path / "runs"), "tensorboard_dir": str(tmp_path / "tb")},
            "data": {"name": "synthetic", "data_dir": str(tiny_data), "crop_size": 32, "val_fraction": 0.25,
                     "synthetic": {"n_images": 12, "size": 64}},
            "model": {"name": "tiny_test_net", "options": {}},
            "train": {"epochs": 2, "batch_size": 4, "steps_per_epoch": 3, "val_steps": 2, "num_preview": 2,
                      "verbose": 0},
        }
        for section, values in sections.items():
            c.setdefault(section, {}).update(copy.deepcopy(values))
        return c

    return make
