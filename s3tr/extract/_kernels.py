"""numba kernels of the extraction: the fused per-parcel reduction over the run index.

Kept apart from the public modules so that the compiled functions are cached once
(``cache=True``) and the Python-level code stays readable. The scan-line index builder lives in
:mod:`s3tr.extract._scanline`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Unsigned 1: indices are kept unsigned in the hot loops. numba guards every signed index
# against negative values (wrap-around), and that guard stops LLVM from vectorising the loop
# (measured: 5x slower on long runs); an unsigned index has no such guard.
_U1 = np.uint64(1)


@njit(cache=True)
def chunk_slots(
    run_start: np.ndarray, run_len: np.ndarray, run_parcel: np.ndarray, n_parcels: int, n_chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the runs (raster order) into ``n_chunks`` bands of about equal pixel count.

    Within a chunk, each parcel gets a *slot* numbered in order of first appearance, so the
    accumulators of a chunk are touched almost sequentially (a sliding window of the parcels of
    a few rows) instead of at random parcel positions. Returns ``bounds`` (int64, run index of
    each chunk's first run, length ``n_chunks + 1``), ``slot`` (int32 per run, local to its
    chunk), ``slot_off`` (int64, first global slot of each chunk, length ``n_chunks + 1``) and
    ``owner`` (int32 parcel position of each global slot). A parcel cut by a chunk boundary
    has one slot in each chunk; their partial statistics are merged at the end.
    """
    n_runs = run_start.shape[0]
    total = 0
    for r in range(n_runs):
        total += run_len[r]
    bounds = np.empty(n_chunks + 1, dtype=np.int64)
    bounds[0] = 0
    done = 0
    c = 1
    for r in range(n_runs):
        done += run_len[r]
        while c < n_chunks and done * n_chunks >= total * c:
            bounds[c] = r + 1
            c += 1
    while c <= n_chunks:
        bounds[c] = n_runs
        c += 1
    slot = np.empty(n_runs, dtype=np.int32)
    last_chunk = np.full(n_parcels, -1, dtype=np.int64)
    local = np.zeros(n_parcels, dtype=np.int32)
    slot_off = np.zeros(n_chunks + 1, dtype=np.int64)
    owner = np.empty(n_runs, dtype=np.int32)
    n_slots = 0
    for c in range(n_chunks):
        k = 0
        for r in range(bounds[c], bounds[c + 1]):
            p = run_parcel[r]
            if last_chunk[p] != c:
                last_chunk[p] = c
                local[p] = k
                owner[n_slots] = p
                n_slots += 1
                k += 1
            slot[r] = local[p]
        slot_off[c + 1] = slot_off[c] + k
    return bounds, slot, slot_off, owner[:n_slots].copy()


@njit(cache=True, fastmath={"reassoc", "contract", "nsz"})
def _run_sums(values: np.ndarray, k: int, i0: int, i1: int, shift: float) -> tuple[int, float, float]:
    """Valid count and shifted sums of ``values[k, i0:i1]``, branch-free so that LLVM vectorises it.

    ``reassoc`` lets the float64 sums be split over SIMD lanes; no ``nnan`` flag, so the
    ``v == v`` NaN test keeps its meaning. The unsigned loop index avoids numba's negative-index
    guard, which would block vectorisation.
    """
    n = 0
    s1 = 0.0
    s2 = 0.0
    kk = np.uint64(k)
    for i in range(np.uint64(i0), np.uint64(i1)):
        v = np.float64(values[kk, i])
        ok = v == v
        d = v - shift if ok else 0.0
        s1 += d
        s2 += d * d
        n += ok
    return n, s1, s2


@njit(parallel=True, cache=True)
def reduce_runs(
    values: np.ndarray,
    run_start: np.ndarray,
    run_len: np.ndarray,
    slot: np.ndarray,
    bounds: np.ndarray,
    slot_off: np.ndarray,
    owner: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    count: np.ndarray,
    plane0: int,
) -> None:
    """Fused per-parcel mean, population std and valid count over the planes of ``values``.

    ``values`` is ``(K, H*W)`` float32/float64 with NaN for invalid pixels. Each chunk of runs
    (:func:`chunk_slots`) is one ``prange`` iteration with its own accumulators, so every thread
    streams its band of rows of each plane forwards — only pixels inside parcels are read. Results
    for plane ``k`` go to column ``plane0 + k`` of ``mean``/``std`` (float64) and ``count``
    (int32), each ``(n_parcels, n_columns)``.

    Numerics: each (slot, plane) sums ``v - shift`` and ``(v - shift)**2`` in float64, with
    ``shift`` the first valid value met, which avoids the cancellation of ``E[x^2] - E[x]^2``; the
    chunk partials are merged with Chan et al.'s pairwise formula for (n, mean, M2).
    """
    n_planes = values.shape[0]
    n_chunks = bounds.shape[0] - 1
    n_slots = slot_off[n_chunks]
    # acc[s, k] = (n, s1, s2, shift): the numbers of one (slot, plane) share a cache line, and
    # the planes of one slot follow each other. Initialised when the slot first appears.
    acc = np.empty((n_slots, n_planes, 4), dtype=np.float64)
    for c in prange(n_chunks):
        base = slot_off[c]
        fresh = 0
        for r in range(bounds[c], bounds[c + 1]):
            local = slot[r]
            s = base + local
            if local == fresh:
                for k in range(n_planes):
                    acc[s, k, 0] = 0.0
                    acc[s, k, 1] = 0.0
                    acc[s, k, 2] = 0.0
                    acc[s, k, 3] = 0.0
                fresh += 1
            a = run_start[r]
            b = a + run_len[r]
            # Plain indexing (no ``values[k]`` view): a view costs an atomic reference count
            # update on an array shared by all threads.
            for k in range(n_planes):
                kk = np.uint64(k)
                i0 = a
                if acc[s, k, 0] == 0.0:
                    while i0 < b and not values[kk, np.uint64(i0)] == values[kk, np.uint64(i0)]:
                        i0 += 1
                    if i0 == b:
                        continue
                    acc[s, k, 3] = np.float64(values[kk, np.uint64(i0)])
                n, s1, s2 = _run_sums(values, k, i0, b, acc[s, k, 3])
                acc[s, k, 0] += n
                acc[s, k, 1] += s1
                acc[s, k, 2] += s2
    # Merge: parcels without any run keep count 0 (set by the caller); within one chunk every
    # slot has a different parcel, so the slots of a chunk merge in parallel without races.
    for c in range(n_chunks):
        for s in prange(slot_off[c], slot_off[c + 1]):
            p = owner[s]
            for k in range(n_planes):
                n = acc[s, k, 0]
                if n == 0.0:
                    continue
                m = acc[s, k, 1] / n
                mean_c = acc[s, k, 3] + m
                m2_c = max(acc[s, k, 2] - n * m * m, 0.0)
                col = plane0 + k
                n_t = np.float64(count[p, col])
                if n_t == 0.0:
                    count[p, col] = np.int32(n)
                    mean[p, col] = mean_c
                    std[p, col] = m2_c  # M2 for now; turned into the std below
                else:
                    tot = n_t + n
                    delta = mean_c - mean[p, col]
                    mean[p, col] += delta * n / tot
                    std[p, col] += m2_c + delta * delta * n_t * n / tot
                    count[p, col] = np.int32(tot)
    for p in prange(mean.shape[0]):
        for k in range(n_planes):
            col = plane0 + k
            if count[p, col] == 0:
                mean[p, col] = np.nan
                std[p, col] = np.nan
            else:
                std[p, col] = np.sqrt(std[p, col] / count[p, col])
