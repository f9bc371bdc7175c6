"""Small demo seasons generated once per test session (a couple of seconds each)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from s3tr.demo import DemoPaths, generate_season

# Three months of spring-summer over 2 km x 2 km: mowing, sowing, harvest and clouds all happen.
SMALL = {
    "n_parcels": 60,
    "area_size_m": 2000.0,
    "start": dt.date(2025, 4, 25),
    "end": dt.date(2025, 7, 25),
}


@pytest.fixture(scope="session")
def season(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    """A 60-parcel, three-month demo season (seed 3)."""
    return generate_season(tmp_path_factory.mktemp("demo") / "season", seed=3, **SMALL)


@pytest.fixture(scope="session")
def season_root(season: DemoPaths) -> Path:
    return season.root
