"""landseg: semantic segmentation of satellite and aerial land-cover imagery (Keras 3 / TensorFlow)."""

__version__ = "0.1.0"

# TensorFlow's CPU threading from the cores this process may use, before TensorFlow starts
# (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS or LANDSEG_*_OP_THREADS override it).
from landseg import runtime as _runtime

_runtime.configure_at_import()

# Scene-sized buffers returned to the OS when freed (glibc's mmap threshold fixed at 16 MB).
from landseg import allocator as _allocator

_allocator.configure_allocator()
