"""No code from untrusted files (issue 23): every loader of a file a user may have downloaded refuses,
with one line naming the file, what would run code; the crafted files here would create a marker file if
anything unpickled them. (Weights .pth files: tests/models/test_torch_pickle.py; .keras with a Lambda layer:
tests/inference/test_predict_faults.py; YAML tags: tests/train/test_config.py.)"""

import os

import numpy as np
import pytest


class RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def hostile(tmp_path):
    """(an object array that runs `touch marker` when unpickled, the marker path)."""
    marker = tmp_path / "marker"
    return np.array([RunsCommand(f"touch {marker}")], dtype=object), marker


def test_histogram_reference_npy_with_objects_is_refused(hostile, tmp_path):
    from landseg.data.errors import DataError
    from landseg.data.histogram import load_reference

    array, marker = hostile
    path = tmp_path / "hist_reference.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataError, match=rf"{path}: not a saved histogram reference .*allow_pickle=False"):
        load_reference(path)
    assert not marker.exists()


def test_optimizer_state_npz_with_objects_is_refused(hostile, tmp_path):
    import keras

    from landseg.runs import RunFolder

    array, marker = hostile
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    np.savez(folder.optimizer, v00000=array)
    opt = keras.optimizers.Adam()
    opt.build([keras.Variable(np.zeros(2, np.float32))])
    with pytest.raises(ValueError, match=rf"{folder.optimizer}: not a readable optimizer state"):
        folder.load_optimizer_state(opt)
    assert not marker.exists()


def test_encoder_weights_npz_with_objects_is_refused(hostile, tmp_path):
    from landseg.models import build_model

    array, marker = hostile
    path = tmp_path / "weights.npz"
    np.savez(path, **{"bb.stem.0.weight": array})
    with pytest.raises(ValueError, match=rf"{path}: not a numpy .npz weights file"):
        build_model("lite_unet", 2, input_shape=(64, 64, 3), encoder="resnet18_geoembed", encoder_weights=str(path),
                    input_downsample=2)
    assert not marker.exists()
