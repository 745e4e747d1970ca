"""landseg: semantic segmentation of satellite and aerial land-cover imagery (Keras 3 / TensorFlow)."""

__version__ = "0.1.0"
