"""Shared fixtures: where the real dataset samples live, and quiet TF logging."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")

SHARED_DATA = Path(os.environ.get("LANDSEG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real dataset samples (../shared/data); tests that need them skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real dataset samples not found at {SHARED_DATA} (set LANDSEG_SHARED_DATA to use another folder)")
    return SHARED_DATA
