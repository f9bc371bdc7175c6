"""The demo parcels: RPG schema, Lambert-93, realistic and valid geometry, real crop codes."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from s3tr.demo import DemoPaths
from s3tr.demo.crops import CODES, CROP_MIX
from s3tr.demo.parcels import make_layout


@pytest.fixture(scope="module")
def parcels(season: DemoPaths) -> gpd.GeoDataFrame:
    return gpd.read_file(season.parcels, layer="parcels")


def test_layer_schema_and_crs(season: DemoPaths, parcels: gpd.GeoDataFrame) -> None:
    assert pyogrio.list_layers(season.parcels)[:, 0].tolist() == ["parcels"]
    assert parcels.crs.to_epsg() == 2154
    assert list(parcels.columns) == [
        "id_parcel",
        "code_cultu",
        "code_group",
        "surf_parc",
        "pacage",
        "campaign",
        "geometry",
    ]
    assert parcels["id_parcel"].is_unique
    assert parcels["id_parcel"].map(lambda s: isinstance(s, str)).all()
    assert (parcels["campaign"] == 2025).all()
    assert parcels["pacage"].map(lambda s: re.fullmatch(r"086\d{6}", s) is not None).all()
    assert set(parcels.geom_type) == {"Polygon"}
    # Declared group is the group of the declared code.
    assert (parcels["code_group"] == parcels["code_cultu"].map(lambda c: CODES[c].group)).all()


def test_geometry_valid_inside_and_not_overlapping(season: DemoPaths, parcels: gpd.GeoDataFrame) -> None:
    assert parcels.is_valid.all()
    # surf_parc is the Lambert-93 area in hectares, rounded to 2 decimals.
    np.testing.assert_allclose(parcels["surf_parc"], parcels.area / 1e4, atol=0.006)
    union = shapely.union_all(parcels.geometry.values)
    assert union.area == pytest.approx(parcels.area.sum(), rel=1e-9)
    # Gaps (hedges, tracks) between neighbours: no two parcels touch closer than ~1 m.
    tree = shapely.STRtree(parcels.geometry.values)
    pairs = tree.query(parcels.geometry.values, predicate="dwithin", distance=1.0)
    assert (pairs[0] == pairs[1]).all()
    # Inside the area of the manifest (given in UTM 31N).
    import json

    bbox = json.loads(season.manifest.read_text())["area_bbox_utm"]
    utm = parcels.to_crs(32631).total_bounds
    assert utm[0] >= bbox[0] - 1 and utm[1] >= bbox[1] - 1 and utm[2] <= bbox[2] + 1 and utm[3] <= bbox[3] + 1


def test_department_86_near_poitiers(parcels: gpd.GeoDataFrame) -> None:
    lon, lat = parcels.to_crs(4326).union_all().centroid.coords[0]
    # Poitiers is at 0.34 E, 46.58 N; the demo area is a few km to its west.
    assert 0.15 < lon < 0.40 and 46.50 < lat < 46.65


def test_default_layout_sizes_and_mix() -> None:
    # The default density over the full 10 km area, without rendering any raster.
    rng = np.random.default_rng(0)
    lay = make_layout(rng, bounds=(285_000, 5_156_000, 295_000, 5_166_000), n_parcels=2000, crs="EPSG:32631")
    ha = lay.parcels.area.to_numpy() / 1e4
    assert len(ha) == 2000
    assert ha.max() <= 30.0
    assert np.median(ha) > 1.5
    assert ((ha >= 0.3) & (ha <= 30)).mean() > 0.97
    assert (ha < 0.5).sum() >= 10  # some small or narrow parcels
    assert lay.parcels["tiny"].sum() >= 1 and (ha[lay.parcels["tiny"].to_numpy()] < 0.3).all()
    farms = lay.parcels["farm"].nunique()
    assert 40 <= farms <= 120
    # Irregular shapes: not all rectangles (convex hull area ratio varies, vertex counts vary).
    nverts = shapely.get_num_coordinates(lay.parcels.geometry.values)
    assert len(np.unique(nverts)) > 5


def test_regional_mix_shares() -> None:
    from s3tr.demo.farming import plan_parcels

    rng = np.random.default_rng(1)
    n = 2000
    farms = rng.integers(0, 100, n)
    plans = plan_parcels(
        rng,
        labels=np.arange(1, n + 1),
        farms=farms,
        livestock=rng.random(100) < 0.3,
        tiny=np.zeros(n, bool),
        year=2025,
    )
    share = pd.Series([p.declared_code for p in plans]).value_counts(normalize=True)
    assert 0.24 < share["BTH"] < 0.36  # soft wheat is about 30 %
    for code in CROP_MIX:
        assert share.get(code, 0) > 0, code


def test_codes_and_groups_are_real(realdata) -> None:
    table = pd.read_csv(realdata / "rpg_codes" / "rpg_codes_2017.csv", sep=";", dtype=str)
    real = dict(zip(table["Code Culture"], table["Code Groupe Culture"].astype(int), strict=True))
    for code, c in CODES.items():
        assert code in real, f"{code} is not an RPG code"
        assert real[code] == c.group, f"{code}: demo group {c.group}, RPG group {real[code]}"
