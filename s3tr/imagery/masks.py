"""Valid-pixel masks from the Sentinel-2 scene classification (SCL).

SCL classes (Sen2Cor): 0 no data, 1 saturated or defective, 2 dark area pixels / topographic shadow,
3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium probability,
9 cloud high probability, 10 thin cirrus, 11 snow or ice.

Sen2Cor misses the soft edges of clouds and of their shadows, so the cloud and shadow classes
are grown by a few pixels before they are removed. Nodata, defective and snow pixels have sharp,
reliable edges and are not grown.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numba import njit
from scipy import ndimage

__all__ = ["CLOUD_SHADOW_SCL", "DEFAULT_INVALID_SCL", "SCL_CLASSES", "valid_mask"]

#: Classes that are never usable for vegetation monitoring (the JRC / Sen4CAP default set).
DEFAULT_INVALID_SCL: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)
#: Classes whose edges are uncertain and get dilated: cloud shadow, clouds, thin cirrus.
CLOUD_SHADOW_SCL: tuple[int, ...] = (3, 8, 9, 10)

SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}


# Bits of the per-class lookup table of the fused kernel.
_BAD = np.uint8(1)
_SEED = np.uint8(2)


@njit(cache=True, nogil=True)
def _row_dilate(
    code: np.ndarray, lut: np.ndarray, q: int, r: int, dst: np.ndarray
) -> None:  # pragma: no cover
    """``dst[j]`` = 1 when a seed lies in row ``q`` within ``r`` columns of ``j`` (a running count)."""
    w = code.shape[1]
    cnt = 0
    for j in range(min(r, w - 1) + 1):
        cnt += (lut[code[q, j]] >> 1) & 1
    for j in range(w):
        dst[j] = 1 if cnt > 0 else 0
        if j + r + 1 < w:
            cnt += (lut[code[q, j + r + 1]] >> 1) & 1
        if j - r >= 0:
            cnt -= (lut[code[q, j - r]] >> 1) & 1


@njit(cache=True, nogil=True)
def _valid_square(code: np.ndarray, lut: np.ndarray, r: int, out: np.ndarray) -> None:  # pragma: no cover
    """``out`` = not (bad class, or a seed within Chebyshev distance ``r``) in one pass.

    ``lut[class]`` holds the bits ``_BAD`` and ``_SEED``. The square dilation is separable: the
    rows are dilated into a ring of ``2r + 2`` rows and a per-column running count over the
    ``2r + 1`` rows around the current one says whether a seed is near. Nothing outside the
    array is a seed (as scipy's ``binary_dilation`` with its default border).
    """
    h, w = code.shape
    ring_n = 2 * r + 2
    ring = np.zeros((ring_n, w), dtype=np.uint8)
    near = np.zeros(w, dtype=np.int32)
    if r > 0:
        for q in range(min(r, h - 1) + 1):
            _row_dilate(code, lut, q, r, ring[q % ring_n])
            for j in range(w):
                near[j] += ring[q % ring_n, j]
    for i in range(h):
        for j in range(w):
            out[i, j] = not ((lut[code[i, j]] & 1) != 0 or near[j] > 0)
        if r > 0:
            q = i - r
            if q >= 0:
                for j in range(w):
                    near[j] -= ring[q % ring_n, j]
            q = i + r + 1
            if q < h:
                _row_dilate(code, lut, q, r, ring[q % ring_n])
                for j in range(w):
                    near[j] += ring[q % ring_n, j]


def _structure(radius: int, shape: str) -> np.ndarray:
    if shape == "square":
        return np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    if shape == "disk":
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        return (xx * xx + yy * yy) <= radius * radius
    raise ValueError(f"unknown dilation shape {shape!r}; use 'square' or 'disk'")


def valid_mask(
    scl: np.ndarray,
    *,
    invalid: Iterable[int] = DEFAULT_INVALID_SCL,
    dilate_px: int = 1,
    dilate_classes: Iterable[int] = CLOUD_SHADOW_SCL,
    shape: str = "square",
) -> np.ndarray:
    """Pixels usable for index statistics.

    Parameters
    ----------
    scl
        Scene classification, integer array ``(y, x)`` (uint8 on the 20 m grid; 0 = nodata).
    invalid
        SCL classes that are not valid. Default :data:`DEFAULT_INVALID_SCL`.
    dilate_px
        Radius in pixels by which the cloud/shadow classes are grown (0 = no growth). With
        ``shape="square"`` a radius of 1 marks the 8 neighbours of a cloud pixel invalid too.
    dilate_classes
        Classes to grow; only those also in ``invalid`` are grown (a class declared valid is
        never removed). Default :data:`CLOUD_SHADOW_SCL` (3, 8, 9, 10); nodata, defective and snow
        are never grown by default.
    shape
        ``"square"`` (Chebyshev distance <= radius) or ``"disk"`` (Euclidean distance <= radius).

    Returns
    -------
    numpy.ndarray
        bool ``(y, x)``, True where the pixel is valid.
    """
    scl = np.asarray(scl)
    if scl.ndim != 2:
        raise ValueError(f"scl must be 2-D (y, x), got shape {scl.shape}")
    if dilate_px < 0:
        raise ValueError("dilate_px must be >= 0")
    invalid_set = sorted({int(c) for c in invalid})
    grow = sorted(set(invalid_set) & {int(c) for c in dilate_classes})
    if shape == "square" or dilate_px == 0 or not grow:
        _structure(dilate_px, shape)  # validates ``shape``
        # Fused kernel: class lookup, separable square dilation and the final mask in one pass,
        # no full-size temporaries (a full tile takes tens of milliseconds, not hundreds).
        lut = np.zeros(256, dtype=np.uint8)
        if scl.dtype == np.uint8:
            code = np.ascontiguousarray(scl)
            for c in invalid_set:
                if 0 <= c <= 255:
                    lut[c] |= _BAD
            for c in grow:
                if 0 <= c <= 255:
                    lut[c] |= _SEED
        else:  # other dtypes: classify with isin, then the same kernel over the 2-bit codes
            code = np.isin(scl, invalid_set).astype(np.uint8)
            if grow and dilate_px > 0:
                code |= np.isin(scl, grow).astype(np.uint8) << 1
            lut[:4] = np.arange(4, dtype=np.uint8)
        out = np.empty(scl.shape, dtype=bool)
        _valid_square(code, lut, int(dilate_px) if grow else 0, out)
        return out
    bad = np.isin(scl, invalid_set)
    if dilate_px > 0 and grow:
        seed = np.isin(scl, grow)
        if seed.any():
            bad |= ndimage.binary_dilation(seed, structure=_structure(dilate_px, shape))
    return ~bad
