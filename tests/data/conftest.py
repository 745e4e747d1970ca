"""Helpers for the data tests: small planted datasets written into tmp folders."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save(path, array, mode=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode=mode).save(path)
    return str(path)


@pytest.fixture
def dubai_subset(shared_data, tmp_path):
    """Tile 2 (palette PNG masks) and Tile 3 (stray #000000 pixels) of the real Dubai sample, linked."""
    root = tmp_path / "dubai"
    root.mkdir()
    for tile in ("Tile 2", "Tile 3"):
        os.symlink(shared_data / "dubai-aerial" / tile, root / tile)
    os.symlink(shared_data / "dubai-aerial" / "classes.json", root / "classes.json")
    return root


@pytest.fixture
def deepglobe_pair(shared_data, tmp_path):
    """One real DeepGlobe pair in a folder of its own (checking all ten takes too long for a test)."""
    root = tmp_path / "dg"
    root.mkdir()
    for name in ("855_sat.jpg", "855_mask.png"):
        os.symlink(shared_data / "deepglobe" / "train" / name, root / name)
    return root


def copy_tree(src, dst):
    shutil.copytree(src, dst, symlinks=False)
    return Path(dst)
