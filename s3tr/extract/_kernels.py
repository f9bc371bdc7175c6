"""numba kernels of the extraction: CSR construction, overlap colouring and the fused reduction.

Kept apart from the public modules so that the compiled functions are cached once
(``cache=True``) and the Python-level code stays readable.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def runs_from_layer(layer: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of a flat label raster (0 = background, ``i + 1`` = parcel ``i``).

    A run is a maximal horizontal stretch of one label within one row. Returns ``(start int64,
    length int32, parcel int32)`` in raster order; two passes (count, then fill) keep memory exact.
    """
    n = layer.shape[0]
    n_runs = 0
    prev = 0
    for i in range(n):
        lab = layer[i]
        if lab != 0 and (lab != prev or i % width == 0):
            n_runs += 1
        prev = lab
    start = np.empty(n_runs, dtype=np.int64)
    length = np.empty(n_runs, dtype=np.int32)
    parcel = np.empty(n_runs, dtype=np.int32)
    r = -1
    prev = 0
    for i in range(n):
        lab = layer[i]
        if lab != 0:
            if lab != prev or i % width == 0:
                r += 1
                start[r] = i
                length[r] = 0
                parcel[r] = lab - 1
            length[r] += 1
        prev = lab
    return start, length, parcel


@njit(cache=True)
def greedy_colouring(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Greedy colouring of an undirected graph given as edge lists; returns int32 colours.

    Two vertices joined by an edge never share a colour; vertices are coloured in index order, each
    with the smallest colour unused by its already-coloured neighbours.
    """
    degree = np.zeros(n + 1, dtype=np.int64)
    for e in range(left.shape[0]):
        degree[left[e] + 1] += 1
        degree[right[e] + 1] += 1
    for v in range(n):
        degree[v + 1] += degree[v]
    adj = np.empty(degree[n], dtype=np.int64)
    cursor = degree[:-1].copy()
    for e in range(left.shape[0]):
        a = left[e]
        b = right[e]
        adj[cursor[a]] = b
        cursor[a] += 1
        adj[cursor[b]] = a
        cursor[b] += 1
    colours = np.full(n, -1, dtype=np.int32)
    # ``seen[c] == v`` marks colour c as taken by a neighbour of v; no reset needed between vertices.
    seen = np.full(n + 1, -1, dtype=np.int64)
    for v in range(n):
        for k in range(degree[v], degree[v + 1]):
            c = colours[adj[k]]
            if c >= 0:
                seen[c] = v
        c = 0
        while seen[c] == v:
            c += 1
        colours[v] = c
    return colours


@njit(cache=True, fastmath={"reassoc", "contract", "nsz"})
def _run_sums(plane: np.ndarray, i0: int, i1: int, shift: float) -> tuple[int, float, float]:
    """Valid count and shifted sums of ``plane[i0:i1]``, branch-free so that LLVM vectorises it.

    ``reassoc`` lets the float64 sums be split over SIMD lanes; no ``nnan`` flag, so the
    ``v == v`` NaN test keeps its meaning.
    """
    n = 0
    s1 = 0.0
    s2 = 0.0
    for i in range(i0, i1):
        v = np.float64(plane[i])
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
    run_parcel: np.ndarray,
    n_parcels: int,
    n_chunks: int,
    mean: np.ndarray,
    std: np.ndarray,
    count: np.ndarray,
    plane0: int,
) -> None:
    """Fused per-parcel mean, population std and valid count over the planes of ``values``.

    ``values`` is ``(K, H*W)`` float32/float64 with NaN for invalid pixels. The runs (raster order)
    are split into ``n_chunks`` consecutive bands of rows, one per thread (``prange``), each with
    private accumulators, so every thread streams its band of each plane sequentially — only pixels
    inside parcels are read, and the hardware prefetcher sees plain forward streams. Results for
    plane ``k`` go to column ``plane0 + k`` of ``mean``/``std`` (float64) and ``count`` (int32),
    each ``(n_parcels, n_columns)``.

    Numerics: each (parcel, plane) sums ``v - shift`` and ``(v - shift)**2`` in float64, with
    ``shift`` the first valid value met, which avoids the cancellation of ``E[x^2] - E[x]^2``; the
    band partials are merged with Chan et al.'s pairwise formula for (n, mean, M2).
    """
    n_planes = values.shape[0]
    n_runs = run_start.shape[0]
    # acc[c, p, k] = (n, s1, s2, shift): the 4 numbers of one (parcel, plane) share a cache line.
    acc = np.zeros((n_chunks, n_parcels, n_planes, 4), dtype=np.float64)
    for c in prange(n_chunks):
        r0 = c * n_runs // n_chunks
        r1 = (c + 1) * n_runs // n_chunks
        a_c = acc[c]
        for r in range(r0, r1):
            a = run_start[r]
            b = a + run_len[r]
            p = run_parcel[r]
            for k in range(n_planes):
                plane = values[k]
                i0 = a
                if a_c[p, k, 0] == 0.0:
                    while i0 < b and plane[i0] != plane[i0]:
                        i0 += 1
                    if i0 == b:
                        continue
                    a_c[p, k, 3] = np.float64(plane[i0])
                n, s1, s2 = _run_sums(plane, i0, b, a_c[p, k, 3])
                a_c[p, k, 0] += n
                a_c[p, k, 1] += s1
                a_c[p, k, 2] += s2
    for p in prange(n_parcels):
        for k in range(n_planes):
            n_t = 0.0
            mean_t = 0.0
            m2_t = 0.0
            for c in range(n_chunks):
                n = acc[c, p, k, 0]
                if n == 0.0:
                    continue
                m = acc[c, p, k, 1] / n
                mean_c = acc[c, p, k, 3] + m
                m2_c = max(acc[c, p, k, 2] - n * m * m, 0.0)
                if n_t == 0.0:
                    n_t = n
                    mean_t = mean_c
                    m2_t = m2_c
                else:
                    tot = n_t + n
                    delta = mean_c - mean_t
                    mean_t += delta * n / tot
                    m2_t += m2_c + delta * delta * n_t * n / tot
                    n_t = tot
            col = plane0 + k
            count[p, col] = np.int32(n_t)
            if n_t == 0.0:
                mean[p, col] = np.nan
                std[p, col] = np.nan
            else:
                mean[p, col] = mean_t
                std[p, col] = np.sqrt(m2_t / n_t)
