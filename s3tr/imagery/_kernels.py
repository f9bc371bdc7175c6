"""Compiled kernels of the imagery readers (numba, cached on disk after the first call).

They release the GIL (``nogil``): the bands of one read are reduced in parallel threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _reduce_2x2(
    arr: np.ndarray, nodata: float, has_nodata: bool, scale: float, offset: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    h, w = out.shape
    q = np.float32(scale / 4.0)
    off = np.float32(offset)
    nan = np.float32(np.nan)
    nd = arr.dtype.type(nodata) if has_nodata else arr.dtype.type(0)
    for i in range(h):
        r0 = arr[2 * i]
        r1 = arr[2 * i + 1]
        o = out[i]
        for j in range(w):
            a = r0[2 * j]
            b = r0[2 * j + 1]
            c = r1[2 * j]
            d = r1[2 * j + 1]
            # float32 sums of uint16 DN are exact (4 * 65535 < 2**24)
            r = (np.float32(a) + np.float32(b) + np.float32(c) + np.float32(d)) * q + off
            bad = has_nodata and (a == nd or b == nd or c == nd or d == nd)
            o[j] = nan if (bad or not np.isfinite(r)) else r


@njit(cache=True, nogil=True)
def _scale_1x1(
    arr: np.ndarray, nodata: float, has_nodata: bool, scale: float, offset: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    h, w = out.shape
    sc = np.float32(scale)
    off = np.float32(offset)
    nan = np.float32(np.nan)
    nd = arr.dtype.type(nodata) if has_nodata else arr.dtype.type(0)
    for i in range(h):
        r0 = arr[i]
        o = out[i]
        for j in range(w):
            a = r0[j]
            r = np.float32(a) * sc + off
            o[j] = nan if ((has_nodata and a == nd) or not np.isfinite(r)) else r


@njit(cache=True, nogil=True)
def _reduce_kxk(
    arr: np.ndarray, k: int, nodata: float, has_nodata: bool, scale: float, offset: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    h, w = out.shape
    inv = 1.0 / (k * k)
    for i in range(h):
        for j in range(w):
            s = 0.0
            bad = False
            for a in range(k):
                for b in range(k):
                    v = arr[i * k + a, j * k + b]
                    if has_nodata and v == nodata:
                        bad = True
                    s += v
            r = s * inv * scale + offset
            if bad or not np.isfinite(r):
                out[i, j] = np.nan
            else:
                out[i, j] = r


def reduce_mean_scaled(
    arr: np.ndarray, k: int, nodata: float, has_nodata: bool, scale: float, offset: float, out: np.ndarray
) -> None:
    """``out = mean(k x k block) * scale + offset`` in one pass; NaN if any pixel is nodata or not finite.

    ``arr`` is ``(H*k, W*k)`` of stored values (any numeric dtype), ``out`` float32 ``(H, W)``.
    With ``k == 1`` it only masks and scales.
    """
    small_int = arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2
    if k == 2 and small_int:
        _reduce_2x2(arr, nodata, has_nodata, scale, offset, out)
    elif k == 1 and small_int:
        _scale_1x1(arr, nodata, has_nodata, scale, offset, out)
    else:
        _reduce_kxk(arr, k, nodata, has_nodata, scale, offset, out)


@njit(cache=True, parallel=True, error_model="numpy")
def normalized_differences(
    bands: np.ndarray,
    plus: np.ndarray,
    minus: np.ndarray,
    valid: np.ndarray,
    out: np.ndarray,
    slots: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out[slots[k]] = (P - M) / (P + M)``, P and M the float32 sums of the bands ``plus[k]`` and
    ``minus[k]`` of ``bands`` (one or two each, in that order; -1 marks an unused second term);
    NaN where not finite or where ``valid`` (``(y, x)`` bool) is False.

    One parallel pass over the rows for all the indices, each row loop simple enough for LLVM to
    vectorise (the numpy formulas stream each index's temporaries through memory). float32
    operations in the formulas' order, so the values are the same, bit for bit.
    ``error_model="numpy"``: a zero denominator gives inf or NaN, then NaN.
    """
    n_idx = plus.shape[0]
    w = bands.shape[2]
    nan = np.float32(np.nan)
    for i in prange(bands.shape[1]):
        ok = valid[i]
        for k in range(n_idx):
            o = out[slots[k], i]
            p0 = bands[plus[k, 0], i]
            m0 = bands[minus[k, 0], i]
            if plus[k, 1] >= 0:
                p1 = bands[plus[k, 1], i]
                m1 = bands[minus[k, 1], i]
                for j in range(w):
                    p = p0[j] + p1[j]
                    m = m0[j] + m1[j]
                    v = (p - m) / (p + m)
                    o[j] = v if (ok[j] and np.isfinite(v)) else nan
            else:
                for j in range(w):
                    v = (p0[j] - m0[j]) / (p0[j] + m0[j])
                    o[j] = v if (ok[j] and np.isfinite(v)) else nan
