"""Scan-line rasterization of parcel polygons into pixel runs (numba), matching GDAL exactly.

The parcel→pixel index needs, for every parcel on its own, the pixels that
``rasterio.features.rasterize(all_touched=False)`` would burn for it. GDAL's rule (its
filled-polygon scan line, ``alg/llrasterize.cpp``), re-derived here:

1. Vertices go to pixel coordinates with GDAL's *inverse* geotransform ``T`` as
   ``col = T0 + x*T1 + y*T2``, ``row = T3 + x*T4 + y*T5`` (north-up: ``T0 = -c/a``, ``T1 = 1/a``).
   The rounding of this form differs from ``(x - c) / a`` and from ``~affine``, and decides the
   ties, so it is reproduced operation for operation (:func:`gdal_inverse`).
2. Each ring is first put in clockwise order (in CRS coordinates, OGR's orientation test); the
   parts of a multipolygon are burnt separately (union), the rings of one polygon together.
3. For each row ``y`` the centre line ``y + 0.5`` cuts every non-horizontal edge with lower end
   ``dy1`` and upper end ``dy2`` when ``dy1 <= y + 0.5 < dy2`` (half-open: a vertex on the line
   counts once); the cut is ``x = (dy - dy1) * (dx2 - dx1) / (dy2 - dy1) + dx1`` and its column
   ``floor(x + 0.5)``. The sorted columns pair up; a pair ``(a, b)`` burns columns ``a .. b-1``
   clipped to the grid (even-odd, so holes are holes).
4. A horizontal edge lying exactly on a centre line and running towards -x burns its own span
   ``floor(x_end + 0.5) .. floor(x_start + 0.5) - 1``; the other direction burns nothing extra.

Consequence of 3: a pixel whose centre lies exactly on a left edge is out, on a right edge in.
Every parcel is computed independently, so overlapping or touching parcels need no care, and the
loop over parcels runs in parallel (``prange``).

Not reproduced: when the raster is larger than GDAL's block cache, GDAL burns it in horizontal
chunks and shifts the vertices by the chunk's first row; for a vertex far above the chunk that
shift may round by one ulp (1e-12 px), which could flip a centre lying exactly on an edge at a
chunk boundary. Our result is the unchunked one.
"""

from __future__ import annotations

import numpy as np
from affine import Affine
from numba import njit, prange

__all__ = ["gdal_inverse", "polygon_runs"]

# Vertices closer than this (CRS units) are "the same point" for the orientation test.
_ORIENT_EPS = 1e-5


def gdal_inverse(transform: Affine) -> np.ndarray:
    """GDAL's inverse geotransform of ``transform`` as float64 ``[T0, T1, T2, T3, T4, T5]``.

    Same formulas and operation order as GDAL (``GDALInvGeoTransform``), so that pixel
    coordinates of vertices round exactly as in ``rasterize``.
    """
    g0, g1, g2, g3, g4, g5 = transform.to_gdal()
    if g2 == 0.0 and g4 == 0.0 and g1 != 0.0 and g5 != 0.0:
        return np.array([-g0 / g1, 1.0 / g1, 0.0, -g3 / g5, 0.0, 1.0 / g5], dtype=np.float64)
    det = g1 * g5 - g2 * g4
    inv = 1.0 / det
    return np.array(
        [
            (g2 * g3 - g0 * g5) * inv,
            g5 * inv,
            -g2 * inv,
            (-g1 * g3 + g0 * g4) * inv,
            -g4 * inv,
            g1 * inv,
        ],
        dtype=np.float64,
    )


@njit(cache=True)
def _is_clockwise(xs: np.ndarray, ys: np.ndarray, a: int, b: int) -> bool:
    """Orientation of the closed ring ``xs[a:b], ys[a:b]`` (last point = first), as OGR decides.

    Sign of the cross product at the lowest (then rightmost) vertex; when that vertex is
    ambiguous (repeated, or a neighbour closer than ``_ORIENT_EPS``) the sign of the shoelace
    sum. Only matters for horizontal edges lying exactly on a line of pixel centres (rule 4).
    """
    n = b - a
    if n < 3:
        return True
    v = 0
    fallback = False
    for i in range(1, n - 1):
        xi = xs[a + i]
        yi = ys[a + i]
        xv = xs[a + v]
        yv = ys[a + v]
        if yi < yv or (yi == yv and xi > xv):
            v = i
            fallback = False
        elif yi == yv and xi == xv:
            fallback = True
    prev = v - 1 if v > 0 else n - 2
    nxt = v + 1 if v + 1 < n - 1 else 0
    xv = xs[a + v]
    yv = ys[a + v]
    if abs(xs[a + prev] - xv) < _ORIENT_EPS and abs(ys[a + prev] - yv) < _ORIENT_EPS:
        fallback = True
    if abs(xs[a + nxt] - xv) < _ORIENT_EPS and abs(ys[a + nxt] - yv) < _ORIENT_EPS:
        fallback = True
    if not fallback:
        cross = (xs[a + nxt] - xv) * (ys[a + prev] - yv) - (xs[a + prev] - xv) * (ys[a + nxt] - yv)
        if cross > 0:
            return False
        if cross < 0:
            return True
    s = xs[a] * (ys[a + 1] - ys[a + n - 1])
    for i in range(1, n - 1):
        s += xs[a + i] * (ys[a + i + 1] - ys[a + i - 1])
    s += xs[a + n - 1] * (ys[a] - ys[a + n - 2])
    return s < 0


@njit(cache=True)
def _col(v: float, width: int) -> int:
    """``floor(v + 0.5)`` clamped to ``[-1, width]``: the column of a cut.

    Clamping keeps the sort order and the burn decision of every pair (a column below 0 or at
    ``width`` and beyond only ever clips a span) and keeps huge values out of int conversion.
    """
    c = np.floor(v + 0.5)
    if not c >= -1.0:  # also NaN (a corrupt vertex), kept out of the int conversion
        return -1
    if c > width:
        return width
    return int(c)


@njit(cache=True)
def _first_row(level: float, height: int) -> int:
    """Smallest row ``y`` in ``[0, height]`` whose centre line ``y + 0.5`` is ``>= level``."""
    if not level > -1.0:  # also NaN
        return 0
    if level > height + 1.0:
        return height
    y = min(max(0, int(np.ceil(level - 0.5))), height)
    # Settle with the exact comparison of rule 3, whatever the rounding of the estimate.
    while y > 0 and (y - 1) + 0.5 >= level:
        y -= 1
    while y < height and y + 0.5 < level:
        y += 1
    return y


@njit(cache=True)
def _count_cuts(py: np.ndarray, ring_end: np.ndarray, r_a: int, r_b: int, v0: int, height: int) -> int:
    """Number of (row, edge) cuts of rings ``r_a..r_b-1`` (first vertex ``v0``) within the grid."""
    n = 0
    s = v0
    for r in range(r_a, r_b):
        e = ring_end[r]
        for i in range(s, e):
            j = e - 1 if i == s else i - 1
            dy1 = py[j]
            dy2 = py[i]
            if dy1 == dy2:
                continue
            if dy1 > dy2:
                dy1, dy2 = dy2, dy1
            n += _first_row(dy2, height) - _first_row(dy1, height)
        s = e
    return n


@njit(cache=True)
def _part_spans(
    px: np.ndarray,
    py: np.ndarray,
    ring_end: np.ndarray,
    r_a: int,
    r_b: int,
    v0: int,
    n_cuts: int,
    height: int,
    width: int,
    out_row: np.ndarray,
    out_lo: np.ndarray,
    out_hi: np.ndarray,
    n_out: int,
) -> int:
    """Append the spans ``(row, first col, last col)`` of one polygon to ``out_*[n_out:]``.

    The polygon is rings ``r_a..r_b-1`` of ``px, py`` (pixel coordinates, clockwise in CRS,
    first vertex ``v0``), with ``n_cuts`` cuts (:func:`_count_cuts`). Rules 3 and 4 of the module
    doc. Returns the new ``n_out``; needs room for ``n_cuts // 2 + vertices`` spans.
    """
    keys = np.empty(n_cuts, dtype=np.int64)
    stride = width + 2
    k = 0
    s = v0
    for r in range(r_a, r_b):
        e = ring_end[r]
        for i in range(s, e):
            j = e - 1 if i == s else i - 1
            dy1 = py[j]
            dy2 = py[i]
            if dy1 == dy2:
                if px[j] > px[i]:
                    yk = dy1 - 0.5
                    if yk >= 0 and yk < height and yk == np.floor(yk) and yk + 0.5 == dy1:
                        h1 = _col(px[i], width)
                        h2 = _col(px[j], width)
                        if not (h1 > width - 1 or h2 <= 0):
                            lo = max(h1, 0)
                            hi = min(h2 - 1, width - 1)
                            if lo <= hi:
                                out_row[n_out] = int(yk)
                                out_lo[n_out] = lo
                                out_hi[n_out] = hi
                                n_out += 1
                continue
            if dy1 < dy2:
                dx1 = px[j]
                dx2 = px[i]
            else:
                dy1, dy2 = dy2, dy1
                dx1 = px[i]
                dx2 = px[j]
            y_end = _first_row(dy2, height)
            for y in range(_first_row(dy1, height), y_end):
                dy = y + 0.5
                x = (dy - dy1) * (dx2 - dx1) / (dy2 - dy1) + dx1
                keys[k] = y * stride + (_col(x, width) + 1)
                k += 1
        s = e
    keys.sort()
    i = 0
    while i < n_cuts:
        row = keys[i] // stride
        j = i + 1
        while j < n_cuts and keys[j] // stride == row:
            j += 1
        base = row * stride + 1
        for m in range(i, j - 1, 2):
            a = keys[m] - base
            b = keys[m + 1] - base
            if a <= width - 1 and b > 0:
                lo = max(a, 0)
                hi = min(b - 1, width - 1)
                if lo <= hi:
                    out_row[n_out] = row
                    out_lo[n_out] = lo
                    out_hi[n_out] = hi
                    n_out += 1
        i = j
    return n_out


@njit(cache=True)
def _geometry_runs(
    g: int,
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    part_off: np.ndarray,
    geom_off: np.ndarray,
    t: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``(flat start int64, length int32)`` of geometry ``g``, row-major, merged."""
    p_a = geom_off[g]
    p_b = geom_off[g + 1]
    r_a = part_off[p_a]
    r_b = part_off[p_b]
    v_a = ring_off[r_a]
    v_b = ring_off[r_b]
    nv = v_b - v_a
    px = np.empty(nv, dtype=np.float64)
    py = np.empty(nv, dtype=np.float64)
    ring_end = np.empty(r_b - r_a, dtype=np.int64)
    k = 0
    for r in range(r_a, r_b):
        a = ring_off[r]
        b = ring_off[r + 1]
        cw = _is_clockwise(xs, ys, a, b)
        for i in range(b - a):
            src = a + i if cw else b - 1 - i
            x = xs[src]
            y = ys[src]
            px[k] = t[0] + x * t[1] + y * t[2]
            py[k] = t[3] + x * t[4] + y * t[5]
            k += 1
        ring_end[r - r_a] = k
    # Bound the spans, then fill them part by part.
    bound = nv
    for p in range(p_a, p_b):
        v0 = ring_off[part_off[p]] - v_a
        bound += _count_cuts(py, ring_end, part_off[p] - r_a, part_off[p + 1] - r_a, v0, height) // 2
    row = np.empty(bound, dtype=np.int64)
    lo = np.empty(bound, dtype=np.int64)
    hi = np.empty(bound, dtype=np.int64)
    n = 0
    for p in range(p_a, p_b):
        q_a = part_off[p] - r_a
        q_b = part_off[p + 1] - r_a
        v0 = ring_off[part_off[p]] - v_a
        n_cuts = _count_cuts(py, ring_end, q_a, q_b, v0, height)
        n = _part_spans(px, py, ring_end, q_a, q_b, v0, n_cuts, height, width, row, lo, hi, n)
    # Union of the spans (parts may overlap, horizontal-edge spans may repeat others): sort by
    # (row, first column), merge overlapping and adjacent ones into maximal runs.
    key = row[:n] * (width + 1) + lo[:n]
    order = np.argsort(key)
    start = np.empty(n, dtype=np.int64)
    length = np.empty(n, dtype=np.int32)
    m = -1
    cur_row = -1
    cur_hi = -2
    for idx in order:
        rr = row[idx]
        if rr == cur_row and lo[idx] <= cur_hi + 1:
            if hi[idx] > cur_hi:
                length[m] += hi[idx] - cur_hi
                cur_hi = hi[idx]
            continue
        m += 1
        start[m] = rr * width + lo[idx]
        length[m] = hi[idx] - lo[idx] + 1
        cur_row = rr
        cur_hi = hi[idx]
    return start[: m + 1], length[: m + 1]


@njit(parallel=True, cache=True)
def polygon_runs(
    xs: np.ndarray,
    ys: np.ndarray,
    ring_off: np.ndarray,
    part_off: np.ndarray,
    geom_off: np.ndarray,
    geom_id: np.ndarray,
    t: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of every geometry of a ragged multipolygon array, as GDAL would burn each alone.

    ``xs, ys`` (float64, CRS) with ``ring_off``/``part_off``/``geom_off`` are the offsets of
    ``shapely.to_ragged_array`` for MultiPolygons; ``geom_id[g]`` (int32) labels geometry ``g``'s
    runs; ``t`` is :func:`gdal_inverse` of the grid transform. Returns ``(start int64 flat
    row-major index, length int32, geom_id int32)``, grouped by geometry. Two parallel passes
    (count, then fill) keep the output exactly sized.
    """
    n_geoms = geom_off.shape[0] - 1
    counts = np.zeros(n_geoms + 1, dtype=np.int64)
    for g in prange(n_geoms):
        s, _ = _geometry_runs(g, xs, ys, ring_off, part_off, geom_off, t, height, width)
        counts[g + 1] = s.shape[0]
    offsets = np.cumsum(counts)
    total = offsets[n_geoms]
    start = np.empty(total, dtype=np.int64)
    length = np.empty(total, dtype=np.int32)
    label = np.empty(total, dtype=np.int32)
    for g in prange(n_geoms):
        s, ln = _geometry_runs(g, xs, ys, ring_off, part_off, geom_off, t, height, width)
        o = offsets[g]
        for i in range(s.shape[0]):
            start[o + i] = s[i]
            length[o + i] = ln[i]
            label[o + i] = geom_id[g]
    return start, length, label
