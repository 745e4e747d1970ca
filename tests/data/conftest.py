"""Fixtures for the data tests: real samples linked into tmp folders (helpers: data_helpers.py)."""

import os

import pytest


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
