"""Crop calendars, management events and spectra (unit level, no files)."""

from __future__ import annotations

import numpy as np
import pytest

from s3tr.demo.farming import ParcelPlan
from s3tr.demo.phenology import BANDS, COMPONENTS, SPECTRA, daily_cover, endmember_matrix
from s3tr.demo.scenes import to_dn


def _ndvi(cover: np.ndarray, doy: int = 180) -> np.ndarray:
    """NDVI of covers ``(..., 3)`` (green, dry, flower) over average soil."""
    e = endmember_matrix(doy, 1.0)
    full = np.zeros((*cover.shape[:-1], len(COMPONENTS)))
    full[..., :3] = cover
    full[..., 5] = 1 - cover.sum(axis=-1)
    refl = full @ e
    red, nir = refl[..., BANDS.index("B04")], refl[..., BANDS.index("B8A")]
    return (nir - red) / (nir + red)


def test_endmember_values_are_typical() -> None:
    green, soil = SPECTRA["green"], SPECTRA["soil"]
    b = BANDS.index
    assert green[b("B04")] == pytest.approx(0.03, abs=0.01) and 0.35 <= green[b("B8A")] <= 0.45
    assert 0.12 <= soil[b("B04")] <= 0.18 and 0.2 <= soil[b("B8A")] <= 0.25 and 0.25 <= soil[b("B11")] <= 0.3
    wet = endmember_matrix(150, 0.8)[COMPONENTS.index("soil")]
    # Wet soil is darker, and more so in the SWIR.
    assert wet[b("B11")] / soil[b("B11")] < wet[b("B04")] / soil[b("B04")] < 1


def test_maize_is_bare_then_green_then_harvested() -> None:
    p = ParcelPlan(label=1, declared_code="MIS", true_code="MIS", sow=120, harvest=275, vigour=0.95)
    ndvi = _ndvi(daily_cover(p))
    assert ndvi[110] < 0.25  # seedbed
    assert ndvi[200] > 0.8  # July canopy
    assert ndvi[280] < 0.4  # after harvest


def test_winter_wheat_and_rapeseed_flowering() -> None:
    wheat = ParcelPlan(label=1, declared_code="BTH", true_code="BTH", harvest=190, tillage=230)
    nd = _ndvi(daily_cover(wheat))
    assert nd[130] > 0.8 and nd[75] < nd[130] and nd[200] < 0.45 and nd[235] < 0.25
    rape = ParcelPlan(label=2, declared_code="CZH", true_code="CZH", harvest=185)
    cover = daily_cover(rape)
    assert cover[110, 2] > 0.2  # yellow petals in April
    assert _ndvi(cover)[110] < _ndvi(cover)[85]


def test_mowing_drop_and_regrowth() -> None:
    base = ParcelPlan(label=1, declared_code="PPH", true_code="PPH", vigour=0.95)
    mown = ParcelPlan(label=1, declared_code="PPH", true_code="PPH", vigour=0.95, mowings=[(150, 0.6, 21)])
    a, b = _ndvi(daily_cover(base)), _ndvi(daily_cover(mown))
    assert np.allclose(a[:150], b[:150])
    assert 0.15 <= a[149] - b[150] <= 0.45
    assert a[175] - b[175] < 0.03  # regrown after 3-4 weeks
    grazed = ParcelPlan(
        label=1, declared_code="PPH", true_code="PPH", vigour=0.95, grazings=[(150, 200, 0.3)]
    )
    c = _ndvi(daily_cover(grazed))
    steps = np.diff(c[150:200])
    assert (a[180] - c[180]) > 0.05 and np.abs(steps).max() < 0.03  # slow, moderate


def test_covers_are_fractions() -> None:
    p = ParcelPlan(label=1, declared_code="PTR", true_code="PTR", mowings=[(120, 0.7, 14), (160, 0.7, 14)])
    c = daily_cover(p)
    assert c.min() >= 0 and c.sum(axis=1).max() <= 1 + 1e-9


def test_dn_has_the_baseline_offset_and_never_nodata() -> None:
    dn = to_dn(np.array([-0.2, 0.0, 0.1234, 7.0]))
    assert dn.dtype == np.uint16
    assert dn.tolist() == [1, 1000, 2234, 65535]
