"""STAC item conventions on the real items of every provider: band keys, tile ids, grids, scale/offset."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pystac
import pytest
from affine import Affine

from s3tr.errors import CatalogError, ImageryReadError
from s3tr.grid import Grid
from s3tr.imagery.base import (
    Acquisition,
    GridMismatchError,
    acquisition_from_item,
    band_name,
    find_asset,
    iter_strips,
    processing_baseline,
    scale_offset,
    tile_of,
    window_of,
    working_grid,
)

FIX = "stac_fixtures"
ES_ITEMS = f"{FIX}/earthsearch_v1_pystac_client_cassettes/items"
ES_0511 = f"{ES_ITEMS}/sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json"
ES_0509 = f"{ES_ITEMS}/sentinel-2-l2a__S2A_13TDE_20231008_0_L2A.json"
ES_C1 = f"{ES_ITEMS}/sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json"
ES_0214 = f"{FIX}/rio_tiler_pds_S2A_29RKH_20200219_L2A_decimated/S2A_29RKH_20200219_0_L2A.json"
ODC = f"{FIX}/odc_stac_testdata"
CDSE = f"{ODC}/S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914_cdse_stac_v110.json"
PC_0400 = f"{FIX}/stac_geoparquet_pc_item/sentinel-2-item.json"
PC_0212 = f"{FIX}/odc_stac_testdata/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
PC_0212_RASTER = (
    f"{FIX}/odc_stac_testdata/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json"
)
ES_V0 = f"{FIX}/odc_stac_testdata/S2A_28QCH_20200714_0_L2A.json"
STACTOOLS = f"{FIX}/stactools_sentinel2_expected_items"


def load(realdata: Path, rel: str) -> pystac.Item:
    path = realdata / rel
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return pystac.Item.from_dict(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("B04", "B04"),
        ("b4", "B04"),
        ("red", "B04"),
        ("nir", "B08"),
        ("nir08", "B8A"),
        ("B8A", "B8A"),
        ("b8a", "B8A"),
        ("B04_10m", "B04"),
        ("B8A_20m", "B8A"),
        ("SCL_20m", "SCL"),
        ("scl", "SCL"),
        ("swir16", "B11"),
        ("swir22", "B12"),
    ],
)
def test_band_name_accepts_every_provider_spelling(name: str, expected: str) -> None:
    assert band_name(name) == expected


@pytest.mark.parametrize("name", ["B10", "B13", "B5A", "visual", "ndvi"])
def test_band_name_rejects_non_l2a_bands(name: str) -> None:
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        band_name(name)


@pytest.mark.parametrize(
    ("rel", "band", "key"),
    [
        (ES_0511, "B04", "red"),
        (ES_0511, "B8A", "nir08"),
        (ES_0511, "B08", "nir"),
        (ES_0511, "SCL", "scl"),
        (ES_C1, "B11", "swir16"),
        (PC_0400, "B04", "B04"),
        (PC_0400, "SCL", "SCL"),
        (CDSE, "B04", "B04_10m"),
        (CDSE, "B8A", "B8A_20m"),
        (CDSE, "B11", "B11_20m"),
        (CDSE, "SCL", "SCL_20m"),
        (ES_V0, "B8A", "B8A"),
    ],
)
def test_find_asset_on_real_items(realdata: Path, rel: str, band: str, key: str) -> None:
    item = load(realdata, rel)
    found_key, asset, index = find_asset(item, band)
    assert found_key == key
    assert asset is item.assets[key]
    assert index == 1


def test_find_asset_missing_band_names_item_and_band(realdata: Path) -> None:
    item = load(realdata, ES_0511)
    for key in ("swir16", "swir16-jp2"):  # the jp2 twin also lists B11 in its eo:bands
        del item.assets[key]
    with pytest.raises(ImageryReadError) as info:
        find_asset(item, "B11")
    assert item.id in str(info.value)
    assert "B11" in str(info.value)
    assert info.value.item_id == item.id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("rel", "tile"),
    [
        (ES_0511, "20EPT"),  # mgrs:* properties
        (ES_0214, "29RKH"),
        (CDSE, "33UWP"),  # grid:code
        (PC_0400, "24XWR"),  # s2:mgrs_tile
        (ES_V0, "28QCH"),  # item id only... or sentinel:* props
    ],
)
def test_tile_of_real_items(realdata: Path, rel: str, tile: str) -> None:
    assert tile_of(load(realdata, rel)) == tile


def test_tile_from_item_id_alone() -> None:
    item = pystac.Item(
        "S2B_MSIL2A_20220612T182919_R027_T24XWR_20220613T123251", None, None, datetime.now(UTC), {}
    )
    assert tile_of(item) == "24XWR"
    with pytest.raises(CatalogError, match="grid:code"):
        tile_of(pystac.Item("no-tile-here", None, None, datetime.now(UTC), {}))


# The offset regimes of stac_fixtures/README.txt, read from the real items.
@pytest.mark.parametrize(
    ("rel", "band", "scale", "offset", "rule"),
    [
        (ES_0511, "B04", 1e-4, -0.1, "metadata"),  # Earth Search v1, baseline 05.11
        (ES_0509, "B8A", 1e-4, -0.1, "metadata"),  # baseline 05.09
        (ES_C1, "B11", 1e-4, -0.1, "metadata"),  # collection 1
        (ES_0214, "B04", 1e-4, 0.0, "metadata"),  # baseline 02.14 declares offset 0
        (CDSE, "B04", 1e-4, -0.1, "metadata"),  # raster:scale / raster:offset on the asset (STAC 1.1)
        (PC_0400, "B04", 1e-4, -0.1, "baseline"),  # Planetary Computer: nothing declared, baseline 04.00
        (PC_0212, "B04", 1e-4, 0.0, "baseline"),  # Planetary Computer: baseline 02.12
        (PC_0212_RASTER, "B04", 1e-4, 0.0, "baseline"),  # raster:bands without scale/offset
    ],
)
def test_scale_offset_regimes(
    realdata: Path, rel: str, band: str, scale: float, offset: float, rule: str
) -> None:
    item = load(realdata, rel)
    _, asset, idx = find_asset(item, band)
    so = scale_offset(item, asset, idx)
    assert so.rule == rule
    assert so.scale == pytest.approx(scale)
    assert so.offset == pytest.approx(offset)
    assert so.nodata == 0


def test_scale_offset_stactools_items_follow_their_baseline(realdata: Path) -> None:
    folder = realdata / STACTOOLS
    if not folder.is_dir():
        pytest.skip("stactools fixtures missing")
    seen = {}
    for path in sorted(folder.glob("*.expected_output.json")):
        item = pystac.Item.from_dict(json.loads(path.read_text()))
        baseline = processing_baseline(item)
        assert baseline is not None, path.name
        _, asset, idx = find_asset(item, "B04")
        so = scale_offset(item, asset, idx)
        assert so.rule == "metadata"
        # The metadata agrees with ESA's rule: -0.1 from baseline 04.00 on, including the 05.00
        # reprocessing of a 2020 acquisition.
        assert so.offset == pytest.approx(-0.1 if baseline >= (4, 0) else 0.0), path.name
        seen[baseline] = so.offset
    assert {(2, 11), (4, 0), (5, 0)} <= set(seen)


def test_no_metadata_no_baseline_reads_values_as_stored(
    realdata: Path, caplog: pytest.LogCaptureFixture
) -> None:
    item = load(realdata, PC_0400)
    del item.properties["s2:processing_baseline"]
    for key in ("s2:product_uri", "s2:granule_id", "s2:datatake_id", "s2:datastrip_id"):
        item.properties.pop(key, None)
    item.id = "plain-item"
    _, asset, idx = find_asset(item, "B04")
    so = scale_offset(item, asset, idx)
    assert (so.scale, so.offset, so.rule) == (1.0, 0.0, "none")
    assert "values read as stored" in caplog.text


def test_baseline_from_product_name(realdata: Path) -> None:
    item = load(realdata, PC_0400)
    del item.properties["s2:processing_baseline"]
    assert processing_baseline(item) == (4, 0)  # from ..._N0400_... in s2:product_uri


@pytest.mark.parametrize(
    ("rel", "origin", "shape"),
    [
        (ES_0511, (600000.0, 3300040.0), (5490, 5490)),
        (CDSE, (499980.0, 5400000.0), (5490, 5490)),
        (PC_0400, (499980.0, 9100020.0), (5490, 5490)),
        (ES_0214, (199980.0, 2800020.0), (5490, 5490)),
    ],
)
def test_working_grid_is_the_20m_grid(realdata: Path, rel: str, origin: tuple, shape: tuple) -> None:
    grid = working_grid(load(realdata, rel))
    assert grid.resolution == 20.0
    assert (grid.transform.c, grid.transform.f) == origin
    assert grid.shape == shape


def test_acquisition_from_real_item(realdata: Path) -> None:
    acq = acquisition_from_item(load(realdata, CDSE))
    assert acq.tile == "33UWP"
    assert acq.datetime == datetime(2025, 3, 30, 10, 0, 51, 25000, tzinfo=UTC)
    assert acq.grid.crs == "EPSG:32633"
    # equality and hashing ignore the item
    twin = Acquisition(acq.id, acq.tile, acq.datetime, acq.grid, None)
    assert acq == twin and hash(acq) == hash(twin)


def test_acquisition_requires_aware_datetime() -> None:
    grid = Grid("EPSG:32631", Affine(20, 0, 199980, 0, -20, 5200020), (10, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        Acquisition("x", "31TBM", datetime(2025, 5, 1), grid)


def test_window_of_checks_alignment() -> None:
    grid = Grid("EPSG:32631", Affine(20, 0, 199980, 0, -20, 5200020), (5490, 5490))
    assert window_of(grid, grid.window(7, 11, 3, 4)) == (7, 11)
    shifted = Grid(grid.crs, grid.transform * Affine.translation(0.5, 0), (3, 3))
    with pytest.raises(GridMismatchError, match="not on a pixel corner"):
        window_of(grid, shifted)
    with pytest.raises(GridMismatchError, match="resolution"):
        window_of(grid, Grid(grid.crs, Affine(10, 0, 199980, 0, -10, 5200020), (3, 3)))
    with pytest.raises(GridMismatchError, match="CRS"):
        window_of(grid, Grid("EPSG:32630", grid.transform, (3, 3)))


def test_iter_strips_cover_the_grid_once() -> None:
    grid = Grid("EPSG:32631", Affine(20, 0, 199980, 0, -20, 5200020), (1100, 37))
    strips = list(iter_strips(grid, rows=512))
    assert [s.shape for s in strips] == [(512, 37), (512, 37), (76, 37)]
    assert [window_of(grid, s) for s in strips] == [(0, 0), (512, 0), (1024, 0)]


def test_every_source_implements_the_protocol(tmp_path: Path) -> None:
    from s3tr.imagery import ImagerySource, LocalStacSource
    from s3tr.imagery.sentinelhub_source import SentinelHubConfig, SentinelHubSource
    from s3tr.imagery.stac_api import StacApiSource

    (tmp_path / "catalog.json").write_text("{}")
    sources = [
        LocalStacSource(tmp_path),
        StacApiSource("http://127.0.0.1:9/v1"),  # nothing is contacted before a listing
        SentinelHubSource(SentinelHubConfig()),
    ]
    for source in sources:
        assert isinstance(source, ImagerySource), type(source).__name__
