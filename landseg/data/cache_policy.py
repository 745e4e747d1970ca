"""Whether the training pipeline keeps decoded scenes in memory: ``data.cache``.

Why: caching decoded scenes saves re-decoding a JPEG per crop, but a dataset's decoded pixels
can be far larger than its files (DeepGlobe's 803 scenes: 2.5 GB of JPEG, 19 GB decoded), and a
cache larger than RAM ends the run. ``auto`` caches only when the decoded train + validation
scenes fit in 10 % of the memory this process may use, and at most 2 GB; otherwise scenes are decoded
when needed and only the file list is shuffled, so memory stays a few scenes' worth whatever
the dataset's size.

Settings: ``auto`` (default), ``true`` / ``memory`` (always in memory), ``false`` / ``none``
(never), or a file prefix (``Dataset.cache`` on disk, e.g. a fast local SSD).
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

from landseg import cgroups

log = logging.getLogger(__name__)

# the decoded-scene cache may take this share of the usable memory, at most MAX_CACHE_BYTES (the rest:
# TensorFlow, the model, activations, prefetched batches, and other programs: a training should not
# hold most of a workstation's RAM for a cache that only saves JPEG decoding)
MEMORY_SHARE = 0.1
MAX_CACHE_BYTES = 2 * 10**9
_MEMINFO = "/proc/meminfo"


def usable_memory() -> int | None:
    """Bytes this process may use: MemAvailable, capped by its cgroup memory limit; None if unknown."""
    available = None
    try:
        with open(_MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    limit = cgroups.memory_limit()
    if limit is not None:
        available = min(available, limit) if available else limit
    return available


def decoded_bytes(sizes: Sequence[tuple[int, int]], bands: int) -> int:
    """Bytes of decoded scenes of ``(width, height)`` each: ``bands`` uint8 image bands + a uint8 mask."""
    return sum(int(w) * int(h) * (bands + 1) for w, h in sizes)


def resolve_cache(setting, sizes: Sequence[tuple[int, int]], bands: int, memory: int | None = None):
    """``data.cache`` -> what ``build_dataset`` takes: True (memory), False, or a disk prefix."""
    if setting in (True, "true", "memory"):
        return True
    if setting in (False, None, "false", "none"):
        return False
    if setting != "auto":
        return os.fspath(setting)
    need = decoded_bytes(sizes, bands)
    memory = usable_memory() if memory is None else memory
    budget = min(int(MEMORY_SHARE * memory), MAX_CACHE_BYTES) if memory else None
    fits = budget is not None and need <= budget
    log.info("data.cache auto: decoded scenes %.2f GB, budget %s -> %s", need / 1e9,
             f"{budget / 1e9:.2f} GB ({MEMORY_SHARE:.0%} of {memory / 1e9:.1f} GB usable, at most {MAX_CACHE_BYTES / 1e9:.0f} GB)" if budget else "unknown",
             "cached in memory" if fits else "decoded on demand, file list shuffled")
    return fits
