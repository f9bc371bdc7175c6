"""Allocation of the large per-tile float32 arrays (band stacks, index stacks).

numpy advises the kernel to back every large array with transparent huge pages
(``madvise(MADV_HUGEPAGE)``). Where THP defragmentation is set to ``madvise`` (a common default,
and the case on the benchmark machine), the first touch of a fresh 1.2 GB band stack then stalls
in direct memory compaction whenever memory is fragmented by other processes: measured 2.4 to
2.8 s of system time per full-tile read against 0.6 to 0.8 s with normal pages (the stored
values of the plain rasterio read cost 0.9 to 1.0 s), i.e. more than decoding two 10 m bands.
A private anonymous mapping without that advice gets normal pages; the array behaves like any
other (writable, picklable, freed with its last reference).
"""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["empty_planes"]

# Below this size numpy's allocator is used as is (no huge-page advice applies to small arrays
# worth avoiding, and a mapping per small array would cost more than it saves).
_MIN_MAPPED_BYTES = 64 * 2**20


def empty_planes(shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape``, on normal pages when it is large."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    flags = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if nbytes < _MIN_MAPPED_BYTES or None in flags:
        return np.empty(shape, dtype=dt)
    buf = mmap.mmap(-1, nbytes, flags=flags[0] | flags[1])
    return np.frombuffer(buf, dtype=dt).reshape(shape)
