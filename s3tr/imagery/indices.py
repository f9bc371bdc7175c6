"""Spectral indices: a registry of formulas, each declaring the bands it needs.

All indices are computed in float32 on the 20 m grid. The NIR band is B8A (narrow NIR, native
20 m) so that no index mixes a 10 m band averaged to 20 m with a native 20 m band for its NIR
term. An index is NaN where any input is NaN (nodata), where a mask marks the pixel invalid, and
where it is undefined (zero denominator) — the ``np.errstate`` + NaN rule, never a silent 0 or inf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from s3tr.imagery._alloc import empty_planes
from s3tr.imagery._kernels import normalized_differences

__all__ = ["INDICES", "SpectralIndex", "bands_for", "compute_indices"]

Formula = Callable[[Mapping[str, np.ndarray]], np.ndarray]

# Pixels per strip of :func:`compute_indices`: each float32 temporary of a formula is 4 times this
# many bytes (256 KiB), so a formula's few temporaries fit in the L2 cache.
_STRIP_PIXELS = 65536


@dataclass(frozen=True)
class SpectralIndex:
    """One spectral index.

    Attributes
    ----------
    name
        Lower-case name (``"ndvi"``), used as the ``index`` coordinate.
    bands
        Band names the formula reads (``("B8A", "B04")``).
    formula
        Human-readable formula.
    description
        What the index measures and its reference.
    compute
        ``compute(bands)`` from a mapping band name -> float32 array; may divide by zero (the caller
        turns non-finite results into NaN).
    normalized_difference
        ``(plus, minus)`` band names when the index is ``(sum(plus) - sum(minus)) / (sum(plus) +
        sum(minus))``, the sums taken in that order, as ``compute`` does: such indices are computed
        together in one compiled pass over the pixels, with the same float32 values.
    """

    name: str
    bands: tuple[str, ...]
    formula: str
    description: str
    compute: Formula
    normalized_difference: tuple[tuple[str, ...], tuple[str, ...]] | None = None


def _nd(a: str, b: str) -> Formula:
    def f(x: Mapping[str, np.ndarray]) -> np.ndarray:
        return (x[a] - x[b]) / (x[a] + x[b])

    return f


def _bsi(x: Mapping[str, np.ndarray]) -> np.ndarray:
    p = x["B11"] + x["B04"]
    q = x["B8A"] + x["B02"]
    return (p - q) / (p + q)


def _evi(x: Mapping[str, np.ndarray]) -> np.ndarray:
    nir, red, blue = x["B8A"], x["B04"], x["B02"]
    return (
        np.float32(2.5)
        * (nir - red)
        / (nir + np.float32(6.0) * red - np.float32(7.5) * blue + np.float32(1.0))
    )


INDICES: dict[str, SpectralIndex] = {
    "ndvi": SpectralIndex(
        "ndvi",
        ("B8A", "B04"),
        "(B8A - B04) / (B8A + B04)",
        "Normalized difference vegetation index (Rouse et al. 1974): green biomass, crop growth, mowing.",
        _nd("B8A", "B04"),
        (("B8A",), ("B04",)),
    ),
    "ndmi": SpectralIndex(
        "ndmi",
        ("B8A", "B11"),
        "(B8A - B11) / (B8A + B11)",
        "Normalized difference moisture index (Gao 1996's NDWI): canopy water content.",
        _nd("B8A", "B11"),
        (("B8A",), ("B11",)),
    ),
    "ndwi": SpectralIndex(
        "ndwi",
        ("B03", "B8A"),
        "(B03 - B8A) / (B03 + B8A)",
        "Normalized difference water index (McFeeters 1996): open water, flooded fields.",
        _nd("B03", "B8A"),
        (("B03",), ("B8A",)),
    ),
    "bsi": SpectralIndex(
        "bsi",
        ("B11", "B04", "B8A", "B02"),
        "((B11 + B04) - (B8A + B02)) / ((B11 + B04) + (B8A + B02))",
        "Bare soil index (Rikimaru et al. 2002): ploughing, bare soil after harvest.",
        _bsi,
        (("B11", "B04"), ("B8A", "B02")),
    ),
    "ndti": SpectralIndex(
        "ndti",
        ("B11", "B12"),
        "(B11 - B12) / (B11 + B12)",
        "Normalized difference tillage index (Van Deventer et al. 1997): dry vegetation, litter and crop "
        "residue (high) against bare soil (low); tells a sward scorched brown from a ploughed field.",
        _nd("B11", "B12"),
        (("B11",), ("B12",)),
    ),
    "evi": SpectralIndex(
        "evi",
        ("B8A", "B04", "B02"),
        "2.5 * (B8A - B04) / (B8A + 6 * B04 - 7.5 * B02 + 1)",
        "Enhanced vegetation index (Huete et al. 2002): like NDVI, less saturated over dense canopies.",
        _evi,
    ),
    "ndre": SpectralIndex(
        "ndre",
        ("B8A", "B05"),
        "(B8A - B05) / (B8A + B05)",
        "Normalized difference red-edge index: chlorophyll content, later-season crop vigour.",
        _nd("B8A", "B05"),
        (("B8A",), ("B05",)),
    ),
}


def _fusable(idx: SpectralIndex) -> bool:
    """Whether the compiled pass computes ``idx``: one or two bands on each side, as many on both."""
    nd = idx.normalized_difference
    return nd is not None and len(nd[0]) == len(nd[1]) and 1 <= len(nd[0]) <= 2


def _fused_indices(
    bands: np.ndarray,
    names: Sequence[str],
    indices: Sequence[SpectralIndex],
    slots: Sequence[int],
    valid: np.ndarray | None,
    out: np.ndarray,
) -> None:
    """The normalized-difference ``indices`` into ``out[slots]``, in one compiled pass.

    ``bands`` is float32 ``(band, y, x)`` with band names ``names``.
    """
    names = list(names)
    plus = np.full((len(indices), 2), -1, dtype=np.int64)
    minus = np.full((len(indices), 2), -1, dtype=np.int64)
    for k, idx in enumerate(indices):
        p, m = idx.normalized_difference  # type: ignore[misc]
        plus[k, : len(p)] = [names.index(b) for b in p]
        minus[k, : len(m)] = [names.index(b) for b in m]
    mask = valid if valid is not None else np.ones(bands.shape[1:], dtype=bool)
    normalized_differences(bands, plus, minus, mask, out, np.asarray(slots, dtype=np.int64))


def _lookup(names: Iterable[str]) -> list[SpectralIndex]:
    out = []
    for n in names:
        key = n.strip().lower()
        if key not in INDICES:
            raise KeyError(f"unknown index {n!r}; known: {', '.join(INDICES)}")
        out.append(INDICES[key])
    return out


def bands_for(names: Iterable[str]) -> list[str]:
    """The bands needed to compute the indices ``names``, without duplicates, in first-use order."""
    seen: dict[str, None] = {}
    for idx in _lookup(names):
        for b in idx.bands:
            seen.setdefault(b, None)
    return list(seen)


def compute_indices(
    reflectance: xr.DataArray, names: Sequence[str], *, mask: np.ndarray | xr.DataArray | None = None
) -> xr.DataArray:
    """Compute spectral indices from reflectance.

    Parameters
    ----------
    reflectance
        float32 surface reflectance ``(band, y, x)`` with a ``band`` coordinate of band names
        (``B04``...), NaN where nodata (as :meth:`ImagerySource.read` returns it). Any CRS; the
        coordinates and attributes are carried over.
    names
        Index names (keys of :data:`INDICES`, case-insensitive).
    mask
        Optional bool ``(y, x)``, True where the pixel is valid (e.g. :func:`valid_mask`).

    Returns
    -------
    xarray.DataArray
        float32 ``(index, y, x)``; NaN where masked, where an input band is NaN and where the index
        is undefined (zero denominator).
    """
    indices = _lookup(names)
    if "band" not in reflectance.dims:
        raise ValueError(f"reflectance must have a 'band' dimension, got {reflectance.dims}")
    available = [str(b) for b in reflectance.coords["band"].values]
    needed = bands_for(i.name for i in indices)
    missing = [b for b in needed if b not in available]
    if missing:
        raise KeyError(f"reflectance lacks band(s) {missing} needed by {[i.name for i in indices]}")
    refl = reflectance.transpose("band", ...)
    arrays = {b: np.asarray(refl.sel(band=b).values, dtype=np.float32) for b in needed}
    spatial_shape = next(iter(arrays.values())).shape if arrays else refl.shape[1:]
    valid = None
    if mask is not None:
        valid = np.asarray(mask, dtype=bool)
        if valid.shape != spatial_shape:
            raise ValueError(f"mask shape {valid.shape} differs from the reflectance's {spatial_shape}")
    out = empty_planes((len(indices), *spatial_shape), np.float32)
    if not spatial_shape:
        raise ValueError("reflectance needs at least one dimension besides 'band'")
    fused = [k for k, idx in enumerate(indices) if _fusable(idx) and len(spatial_shape) == 2]
    if fused:
        # the (band, y, x) array as it is (no copy when float32): the kernel picks its bands
        stack = np.asarray(refl.values, dtype=np.float32)
        _fused_indices(stack, available, [indices[k] for k in fused], fused, valid, out)
    rest = [k for k in range(len(indices)) if k not in fused]
    # The other formulas run on strips of rows small enough that their numpy temporaries stay in
    # the cache (a full tile at once streams several 120 MB temporaries through memory per
    # index); the operations, hence the values, are the same element by element.
    row_px = int(np.prod(spatial_shape[1:]))
    step = max(1, _STRIP_PIXELS // max(1, row_px))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for r0 in range(0, spatial_shape[0], step) if rest else ():
            rows = slice(r0, r0 + step)
            part = {b: a[rows] for b, a in arrays.items()}
            ok = None if valid is None else valid[rows]
            for i in rest:
                v = np.asarray(indices[i].compute(part), dtype=np.float32)
                dst = out[i][rows]
                dst[...] = v
                bad = ~np.isfinite(dst)
                if ok is not None:
                    bad |= ~ok
                dst[bad] = np.nan
    other_dims = [d for d in refl.dims if d != "band"]
    coords = {k: c for k, c in refl.coords.items() if "band" not in c.dims}
    coords["index"] = [i.name for i in indices]
    return xr.DataArray(
        out,
        dims=("index", *other_dims),
        coords=coords,
        attrs={k: v for k, v in reflectance.attrs.items() if k not in ("units", "long_name")},
        name="indices",
    )
