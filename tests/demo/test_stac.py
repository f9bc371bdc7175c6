"""The demo's STAC catalog reads like Earth Search v1 (checked field by field, offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pystac
import pytest
import rasterio
import shapely.geometry

from s3tr.demo import DemoPaths
from s3tr.demo.stac import ASSETS

EXPECTED_KEYS = {
    "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06", "rededge3": "B07",
    "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12", "scl": "SCL",
}  # fmt: skip


@pytest.fixture(scope="module")
def items(season: DemoPaths) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(season.catalog))
    collection = catalog.get_child("sentinel-2-l2a")
    assert isinstance(collection, pystac.Collection)
    return list(collection.get_items())


def test_catalog_layout_is_self_contained(season: DemoPaths, items: list[pystac.Item]) -> None:
    assert len(items) == len(json.loads(season.manifest.read_text())["dates"])
    for path in season.catalog.parent.rglob("*.json"):
        doc = json.loads(path.read_text())
        hrefs = [link["href"] for link in doc.get("links", [])]
        hrefs += [a["href"] for a in doc.get("assets", {}).values()]
        for href in hrefs:
            assert not href.startswith("/") and "://" not in href, f"{path}: absolute href {href}"
            assert (path.parent / href).resolve().exists(), f"{path}: {href} does not exist"


def test_item_properties(items: list[pystac.Item]) -> None:
    for item in items:
        p = item.properties
        assert re.fullmatch(r"S2[ABC]_31TBM_\d{8}_0_L2A", item.id)
        assert item.id[:3].lower() == "s2" + p["platform"][-1] and p["platform"].startswith("sentinel-2")
        assert item.id.split("_")[2] == item.datetime.strftime("%Y%m%d")
        assert 10 <= item.datetime.hour <= 11
        assert 0 <= p["eo:cloud_cover"] <= 100
        assert p["s2:processing_baseline"] == "05.11"
        assert (p["mgrs:utm_zone"], p["mgrs:latitude_band"], p["mgrs:grid_square"]) == (31, "T", "BM")
        # pystac migrates projection v1.1 (``proj:epsg``, what Earth Search writes) to v2 on read.
        assert p.get("proj:code", f"EPSG:{p.get('proj:epsg')}") == "EPSG:32631"
        raw = json.loads(Path(item.get_self_href()).read_text())
        assert raw["properties"]["proj:epsg"] == 32631
        assert sum(
            v for k, v in p.items() if k.startswith("s2:") and k.endswith("_percentage")
        ) == pytest.approx(100, abs=1e-3)
        for ext in ("eo", "projection", "raster"):
            assert any(f"stac-extensions.github.io/{ext}/" in uri for uri in item.stac_extensions), ext
        assert item.collection_id == "sentinel-2-l2a"


def test_assets_match_files(items: list[pystac.Item]) -> None:
    for item in items:
        assert set(item.assets) == set(EXPECTED_KEYS)
        for key, asset in item.assets.items():
            band = EXPECTED_KEYS[key]
            href = Path(asset.get_absolute_href())
            assert href.name == f"{band}.tif"
            assert asset.roles and "data" in asset.roles
            raster = asset.extra_fields["raster:bands"][0]
            assert raster["nodata"] == 0
            if band == "SCL":
                assert raster["data_type"] == "uint8" and "scale" not in raster and "offset" not in raster
            else:
                assert raster["data_type"] == "uint16"
                assert (raster["scale"], raster["offset"]) == (0.0001, -0.1)
                assert asset.extra_fields["eo:bands"][0]["name"] == band
            with rasterio.open(href) as src:
                assert [src.height, src.width] == asset.extra_fields["proj:shape"]
                assert list(src.transform)[:6] == pytest.approx(asset.extra_fields["proj:transform"])
                assert raster["spatial_resolution"] == src.res[0]


def test_geometry_is_the_window_footprint(season: DemoPaths, items: list[pystac.Item]) -> None:
    area = json.loads(season.manifest.read_text())["area_bbox_wgs84"]
    for item in items:
        footprint = shapely.geometry.shape(item.geometry)
        assert footprint.is_valid
        assert footprint.contains(shapely.geometry.box(*area))
        assert footprint.bounds == pytest.approx(tuple(item.bbox), abs=1e-6)


def test_fields_agree_with_a_real_earth_search_item(realdata, items: list[pystac.Item]) -> None:
    real_path = (
        realdata
        / "stac_fixtures/earthsearch_v1_pystac_client_cassettes/items"
        / "sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json"
    )
    real = pystac.Item.from_file(str(real_path))
    ours = items[0]
    # Every property we write that the real item also has is of the same type.
    for key, value in ours.properties.items():
        if key in real.properties:
            assert type(value) is type(real.properties[key]) or isinstance(value, float), key
    missing = {"platform", "eo:cloud_cover", "s2:processing_baseline", "mgrs:utm_zone", "proj:code"} - set(
        ours.properties
    )
    assert not missing
    assert set(real.stac_extensions) >= {
        u for u in ours.stac_extensions if "projection" in u or "raster" in u or "eo/" in u
    }
    for key in EXPECTED_KEYS:
        r, o = real.assets[key], ours.assets[key]
        assert o.media_type == r.media_type
        assert o.title == r.title
        assert o.extra_fields["raster:bands"][0] == {
            **r.extra_fields["raster:bands"][0],
            "spatial_resolution": ASSETS[key][2],
        }
        if "eo:bands" in r.extra_fields:
            assert o.extra_fields["eo:bands"] == r.extra_fields["eo:bands"]


def test_a_season_written_to_a_relative_folder_can_be_moved_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every href of the catalog is relative to it, even when the season was given a relative path."""
    import datetime as dt
    import shutil

    from s3tr.demo import generate_season
    from s3tr.imagery.local import LocalStacSource

    monkeypatch.chdir(tmp_path)
    generate_season(
        Path("rel") / "demo",
        seed=4,
        n_parcels=5,
        area_size_m=600.0,
        start=dt.date(2025, 5, 1),
        end=dt.date(2025, 5, 12),
    )
    moved = shutil.move(str(tmp_path / "rel"), str(tmp_path / "elsewhere"))
    source = LocalStacSource(Path(moved) / "demo" / "stac" / "catalog.json")
    acquisitions = source.list_acquisitions()
    assert acquisitions and not source.problems
    reflectance, scl = source.read_with_scl(acquisitions[0], ["B04", "B8A"])
    assert int(scl.size) > 0 and bool((reflectance.notnull()).any())
