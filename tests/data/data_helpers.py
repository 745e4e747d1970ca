"""Helpers the data tests import (a module of its own: ``from conftest import ...`` finds whichever
conftest was imported first when several test folders are collected together)."""

from pathlib import Path

import numpy as np
from PIL import Image


def save(path, array, mode=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode=mode).save(path)
    return str(path)
