"""landseg.data: reading datasets, checking them, and feeding models through tf.data.

TensorFlow is imported only by the parts that need it (``histogram``, ``pipeline``, ``arrays``), so
the data check and file readers stay quick to start.
"""

from landseg.data.errors import DataError, MaskValuesError
from landseg.data.io import list_images, read_image, read_mask, write_png
from landseg.data.layouts import DATASETS, LAYOUTS, DatasetFiles, Sample, discover, split_samples

__all__ = ["DataError", "MaskValuesError", "read_image", "read_mask", "write_png", "list_images", "Sample",
           "DatasetFiles", "discover", "split_samples", "DATASETS", "LAYOUTS", "match_histograms",
           "build_dataset", "from_arrays", "prepare_image", "ensure_synthetic_dataset", "generate_scene"]

_LAZY = {"match_histograms": "landseg.data.histogram", "build_dataset": "landseg.data.pipeline", "from_arrays": "landseg.data.arrays",
         "prepare_image": "landseg.data.preprocess", "ensure_synthetic_dataset": "landseg.data.synthetic",
         "generate_scene": "landseg.data.synthetic"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'landseg.data' has no attribute {name!r}")
