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


@pytest.fixture(scope="session")
def series(season: DemoPaths):
    """Per-parcel mean NDVI at 20 m on each date, from the files alone (as a pipeline would).

    Columns ``id_parcel, date, ndvi, valid`` (valid = share of the parcel's inner pixels with SCL 4/5).
    """
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import pystac
    import rasterio
    from rasterio.features import rasterize

    parcels = gpd.read_file(season.parcels).to_crs(32631)
    items = sorted(
        pystac.Catalog.from_file(str(season.catalog)).get_items(recursive=True), key=lambda i: i.datetime
    )
    rows = []
    labels = None
    for item in items:
        with rasterio.open(item.assets["scl"].get_absolute_href()) as src:
            scl = src.read(1)
            transform = src.transform
        if labels is None:
            # Parcel interiors (10 m inward buffer) so that edge pixels mixed with hedges stay out.
            inner = [(g, i + 1) for i, g in enumerate(parcels.geometry.buffer(-10.0)) if not g.is_empty]
            labels = rasterize(inner, out_shape=scl.shape, transform=transform, fill=0, dtype="int32")
        bands = {}
        for key in ("red", "nir08"):
            asset = item.assets[key]
            rb = asset.extra_fields["raster:bands"][0]
            with rasterio.open(asset.get_absolute_href()) as src:
                dn = src.read(1).astype(np.float32)
            if dn.shape != scl.shape:  # 10 m band: average 2 x 2 to the 20 m grid
                dn = dn.reshape(scl.shape[0], 2, scl.shape[1], 2).mean(axis=(1, 3))
            bands[key] = dn * rb["scale"] + rb["offset"]
        ndvi = (bands["nir08"] - bands["red"]) / (bands["nir08"] + bands["red"])
        ok = np.isin(scl, (4, 5)) & (labels > 0)
        n = len(parcels) + 1
        total = np.bincount(labels.ravel(), minlength=n)
        count = np.bincount(labels[ok], minlength=n)
        sums = np.bincount(labels[ok], weights=ndvi[ok], minlength=n)
        for i, pid in enumerate(parcels["id_parcel"], start=1):
            rows.append(
                (
                    pid,
                    item.datetime.date().isoformat(),
                    sums[i] / count[i] if count[i] else np.nan,
                    count[i] / max(total[i], 1),
                )
            )
    return pd.DataFrame(rows, columns=["id_parcel", "date", "ndvi", "valid"])
