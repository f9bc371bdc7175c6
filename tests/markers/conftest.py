"""Synthetic grassland series for the marker unit tests (seeded, realistic NDVI levels and 5-day revisit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def grass_series(
    parcel_id: str = "p1",
    *,
    year: int = 2023,
    mowings: tuple[str, ...] = (),
    dips: tuple[str, ...] = (),
    every_days: int = 5,
    seed: int = 0,
    drop: float = 0.35,
    noise: float = 0.01,
) -> pd.DataFrame:
    """A grassland NDVI series: green-up in spring, plateau ~0.8, mowing drops that regrow over ~25 days.

    ``dips`` are single dates replaced by a cloud-like low value (NDVI 0.3) that the next date does not keep.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(f"{year}-03-01", f"{year}-11-15", freq=f"{every_days}D")
    doy = np.asarray(dates.day_of_year, dtype=float)
    base = 0.35 + 0.45 / (1 + np.exp(-(doy - 110) / 8))
    ndvi = base.copy()
    for m in mowings:
        md = pd.Timestamp(m).day_of_year
        after = doy > md
        # Instant loss, then linear regrowth over 25 days.
        ndvi[after] -= drop * np.clip(1 - (doy[after] - md) / 25.0, 0, 1)
    ndvi += rng.normal(0, noise, ndvi.size)
    dips_idx = [int(np.argmin(np.abs(dates - pd.Timestamp(d)))) for d in dips]
    ndvi[dips_idx] = 0.3
    return pd.DataFrame({"parcel_id": parcel_id, "date": dates.strftime("%Y-%m-%d"), "ndvi": ndvi})


@pytest.fixture
def make_grass():
    """The :func:`grass_series` factory."""
    return grass_series
