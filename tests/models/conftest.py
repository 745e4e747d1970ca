"""Tiny configurations of every registered model, built once per session (building is the
slow part on 2 cores)."""

import os

import numpy as np
import pytest

os.environ.setdefault("SM_FRAMEWORK", "tf.keras")

from model_helpers import NUM_CLASSES, SIZE, TINY  # noqa: E402


@pytest.fixture(scope="session")
def batch():
    return np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)


@pytest.fixture(scope="session")
def tiny_models():
    from landseg.models import build_model

    return {name: build_model(name, NUM_CLASSES, **opts) for name, opts in TINY.items()}


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection attempt fails the test loudly."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
