"""Scene-sized buffers go back to the operating system when freed.

glibc's ``malloc`` serves a large request from its heap once a block of that size has been freed (its
mmap threshold rises with each free, up to 32 MB), and then keeps the freed memory: mapping an 8,000²
JPEG left ~90 MB more resident than the arrays alive at the peak (the decoder's and the scene's
buffers). A fixed threshold of 16 MB keeps every allocation of that size or more in its own mapping,
which ``free`` returns at once. Smaller allocations (tiles, batches) keep glibc's heap and its speed;
prediction of the 8,000² scene took the same wall time either way (50 s).

``import landseg`` calls :func:`configure_allocator`. It leaves alone a threshold the user set
(``MALLOC_MMAP_THRESHOLD_``) and does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 16 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def configure_allocator(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold; returns whether it was set."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
