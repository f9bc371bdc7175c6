"""LocalStacSource on real Sentinel-2 L2A COGs: values, resampling, scale/offset, windows, bad input."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio

from s3tr.errors import CatalogError, ImageryReadError
from s3tr.imagery import GridMismatchError, LocalStacSource
from tests.imagery.conftest import BARBELLINO_BANDS, barbellino_item, localise_item

ES_0511_ITEM = (
    "stac_fixtures/earthsearch_v1_pystac_client_cassettes/items/sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json"
)


def dn(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float64)


def as_reflectance(
    values: np.ndarray, scale: float = 1e-4, offset: float = 0.0, nodata: float = 0
) -> np.ndarray:
    out = values * scale + offset
    out[values == nodata] = np.nan
    return out


def block_mean(values: np.ndarray, nodata: float = 0) -> np.ndarray:
    """Independent 2x2 mean (float64, strided slices) with NaN when any of the four pixels is nodata."""
    quads = [values[i::2, j::2] for i in (0, 1) for j in (0, 1)]
    out = (quads[0] + quads[1] + quads[2] + quads[3]) / 4.0
    out[np.any([q == nodata for q in quads], axis=0)] = np.nan
    return out


@pytest.fixture
def decimated_source(decimated_item_dict: dict[str, Any], decimated_dir: Path, write_item) -> LocalStacSource:
    path = write_item(localise_item(decimated_item_dict, decimated_dir))
    return LocalStacSource(path)


def test_lists_the_real_item(decimated_source: LocalStacSource) -> None:
    (acq,) = decimated_source.list_acquisitions()
    assert acq.id == "S2A_29RKH_20200219_0_L2A"
    assert acq.tile == "29RKH"
    assert acq.datetime.isoformat() == "2020-02-19T11:34:25.405000+00:00"
    # decimated 10x: the "20 m" grid of these files is 200 m, 549 x 549, tile origin unchanged
    assert acq.grid.shape == (549, 549)
    assert acq.grid.resolution == 200.0
    assert acq.grid.crs == "EPSG:32629"
    assert (acq.grid.transform.c, acq.grid.transform.f) == (199980.0, 2800020.0)
    assert decimated_source.problems == []


def test_20m_bands_are_scaled_dn(decimated_source: LocalStacSource, decimated_dir: Path) -> None:
    (acq,) = decimated_source.list_acquisitions()
    da = decimated_source.read(acq, ["B8A", "B11"])
    assert da.dims == ("band", "y", "x")
    assert da.dtype == np.float32
    assert list(da.band.values) == ["B8A", "B11"]
    for band in ("B8A", "B11"):
        expected = as_reflectance(dn(decimated_dir / f"{band}.tif"))  # baseline 02.14: offset 0
        np.testing.assert_allclose(da.sel(band=band).values, expected, rtol=1e-6, equal_nan=True)
    x, y = acq.grid.xy()
    np.testing.assert_array_equal(da.x.values, x)
    np.testing.assert_array_equal(da.y.values, y)
    assert da.attrs["crs"] == "EPSG:32629"


def test_10m_bands_are_averaged_2x2(decimated_source: LocalStacSource, decimated_dir: Path) -> None:
    (acq,) = decimated_source.list_acquisitions()
    da = decimated_source.read(acq, ["B04", "B02"])
    for band in ("B04", "B02"):
        raw = dn(decimated_dir / f"{band}.tif")
        expected = block_mean(raw) * 1e-4
        assert expected.shape == (549, 549)
        np.testing.assert_allclose(da.sel(band=band).values, expected, rtol=1e-6, equal_nan=True)
    # a real, non-constant scene: the averaging actually mixes distinct values
    assert np.nanstd(da.sel(band="B04").values) > 0.01


def test_one_nodata_pixel_of_four_gives_nan(
    tmp_path: Path, decimated_copy: Path, decimated_item_dict, write_item
):
    b04 = decimated_copy / "B04.tif"
    with rasterio.open(b04) as ds:
        profile, data = ds.profile, ds.read(1)
    holes = [(10, 11), (200, 301), (1097, 0)]  # 10 m pixels set to nodata
    for r, c in holes:
        data[r, c] = 0
    b04.unlink()
    with rasterio.open(b04, "w", **profile) as ds:
        ds.write(data, 1)
    source = LocalStacSource(write_item(localise_item(decimated_item_dict, decimated_copy)))
    (acq,) = source.list_acquisitions()
    values = source.read(acq, ["B04"]).values[0]
    nan_at = {tuple(ix) for ix in np.argwhere(np.isnan(values))}
    assert nan_at == {(r // 2, c // 2) for r, c in holes}
    np.testing.assert_allclose(values, block_mean(data.astype(np.float64)) * 1e-4, rtol=1e-6, equal_nan=True)


def with_raster_bands_of(item: dict[str, Any], donor: dict[str, Any]) -> dict[str, Any]:
    item = copy.deepcopy(item)
    for key, asset in item["assets"].items():
        if key in donor["assets"] and "raster:bands" in donor["assets"][key]:
            asset["raster:bands"] = copy.deepcopy(donor["assets"][key]["raster:bands"])
    return item


def test_offset_regimes_on_the_same_pixels(
    realdata: Path, decimated_item_dict, decimated_dir: Path, write_item
):
    """Offset 0 (the 02.14 item), -0.1 declared (an Earth Search 05.11 item's raster:bands), -0.1 by
    baseline (Planetary Computer style, no raster:bands)."""
    base = localise_item(decimated_item_dict, decimated_dir)
    es0511 = json.loads((realdata / ES_0511_ITEM).read_text())
    declared = with_raster_bands_of(base, es0511)
    declared["id"] = "declared-minus-0.1"
    by_baseline = copy.deepcopy(base)
    by_baseline["id"] = "pc-style-04.00"
    by_baseline["properties"]["s2:processing_baseline"] = "04.00"
    old_baseline = copy.deepcopy(base)
    old_baseline["id"] = "pc-style-02.14"
    for it in (by_baseline, old_baseline):
        for asset in it["assets"].values():
            asset.pop("raster:bands", None)
    for it in (base, declared, by_baseline, old_baseline):
        write_item(it)
    source = LocalStacSource(write_item(base).parent)
    acqs = {a.id: a for a in source.list_acquisitions()}
    assert len(acqs) == 4, source.problems
    read = {k: source.read(a, ["B04", "B8A"]).values for k, a in acqs.items()}
    ref = read["S2A_29RKH_20200219_0_L2A"]
    np.testing.assert_allclose(read["declared-minus-0.1"], ref - 0.1, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(read["pc-style-04.00"], ref - 0.1, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(read["pc-style-02.14"], ref, atol=1e-7, equal_nan=True)
    assert np.nanmin(ref) > 0.05  # desert: reflectances around 0.1-0.5, the offset matters


def test_window_read_equals_the_full_read(decimated_source: LocalStacSource) -> None:
    (acq,) = decimated_source.list_acquisitions()
    full = decimated_source.read(acq, ["B04", "B8A"])
    sub = acq.grid.window(100, 200, 50, 61)
    part = decimated_source.read(acq, ["B04", "B8A"], grid=sub)
    np.testing.assert_array_equal(part.values, full.values[:, 100:150, 200:261])
    np.testing.assert_array_equal(part.x.values, full.x.values[200:261])
    scl_full = decimated_source.read_scl(acq)
    np.testing.assert_array_equal(decimated_source.read_scl(acq, grid=sub), scl_full[100:150, 200:261])
    # a window reaching past the tile edge reads NaN / 0 outside
    edge = acq.grid.window(540, 540, 20, 20)
    out = decimated_source.read(acq, ["B8A"], grid=edge).values[0]
    assert np.isnan(out[9:, :]).all() and np.isnan(out[:, 9:]).all()
    np.testing.assert_array_equal(out[:9, :9], full.sel(band="B8A").values[540:, 540:])
    assert (decimated_source.read_scl(acq, grid=edge)[9:, :] == 0).all()


def test_misaligned_grid_is_refused(decimated_source: LocalStacSource) -> None:
    from affine import Affine

    from s3tr.grid import Grid

    (acq,) = decimated_source.list_acquisitions()
    shifted = Grid(acq.grid.crs, acq.grid.transform * Affine.translation(0.5, 0), (10, 10))
    with pytest.raises(GridMismatchError):
        decimated_source.read(acq, ["B04"], grid=shifted)


def test_read_with_scl_matches_separate_reads_and_threads_do_not_change_results(
    decimated_item_dict, decimated_dir: Path, write_item
) -> None:
    path = write_item(localise_item(decimated_item_dict, decimated_dir))
    parallel, serial = LocalStacSource(path, max_workers=4), LocalStacSource(path, max_workers=1)
    (acq,) = parallel.list_acquisitions()
    bands = ["B02", "B03", "B04", "B05", "B8A", "B11", "B12"]
    da, scl = parallel.read_with_scl(acq, bands)
    np.testing.assert_array_equal(da.values, serial.read(acq, bands).values)
    np.testing.assert_array_equal(scl, serial.read_scl(acq))
    assert scl.dtype == np.uint8
    np.testing.assert_array_equal(scl, dn(decimated_dir / "SCL.tif").astype(np.uint8))
    assert set(np.unique(scl)) >= {5, 8, 9, 10}


def test_raster_not_matching_proj_metadata_is_an_error(decimated_item_dict, decimated_dir: Path, write_item):
    # The real item describes the full-resolution COGs (10 m, 10980 px); the files are decimated.
    source = LocalStacSource(write_item(localise_item(decimated_item_dict, decimated_dir, fix_proj=False)))
    (acq,) = source.list_acquisitions()
    assert acq.grid.shape == (5490, 5490)
    with pytest.raises(ImageryReadError, match="does not match the item's proj metadata") as info:
        source.read(acq, ["B04"])
    text = str(info.value)
    assert "S2A_29RKH_20200219_0_L2A" in text and "asset red" in text and "B04.tif" in text
    assert info.value.asset == "red"  # type: ignore[attr-defined]


def test_raster_in_another_crs_is_an_error(decimated_item_dict, decimated_copy: Path, write_item) -> None:
    b8a = decimated_copy / "B8A.tif"
    with rasterio.open(b8a) as ds:
        profile, data = ds.profile, ds.read(1)
    profile["crs"] = "EPSG:32630"
    b8a.unlink()
    with rasterio.open(b8a, "w", **profile) as ds:
        ds.write(data, 1)
    item = localise_item(decimated_item_dict, decimated_copy)
    item["assets"]["nir08"].pop("proj:transform")  # no proj metadata: still checked against the grid
    source = LocalStacSource(write_item(item))
    (acq,) = source.list_acquisitions()
    with pytest.raises(ImageryReadError, match="EPSG:32630") as info:
        source.read(acq, ["B8A"])
    assert "nir08" in str(info.value)


def two_items(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    other = copy.deepcopy(item)
    other["id"] = "S2A_29RKH_20200224_0_L2A"
    other["properties"]["datetime"] = "2020-02-24T11:34:25Z"
    return item, other


def test_truncated_cog_fails_that_item_only(
    decimated_item_dict, decimated_copy: Path, tmp_path: Path, write_item
):
    good, bad = two_items(localise_item(decimated_item_dict, decimated_copy))
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    blob = (decimated_copy / "B8A.tif").read_bytes()
    (truncated / "B8A.tif").write_bytes(blob[: len(blob) * 6 // 10])
    bad["assets"]["nir08"]["href"] = str(truncated / "B8A.tif")
    write_item(good)
    source = LocalStacSource(write_item(bad).parent)
    acq_good, acq_bad = source.list_acquisitions()
    assert acq_bad.id == bad["id"]
    with pytest.raises(ImageryReadError) as info:
        source.read(acq_bad, ["B04", "B8A"])
    text = str(info.value)
    assert bad["id"] in text and "nir08" in text and str(truncated / "B8A.tif") in text
    assert "truncated or corrupt" in text
    ok = source.read(acq_good, ["B04", "B8A"])
    assert np.isfinite(ok.values).mean() > 0.99


def test_missing_cog_and_missing_band(decimated_item_dict, decimated_copy: Path, write_item) -> None:
    item = localise_item(decimated_item_dict, decimated_copy)
    assert "swir22" not in item["assets"]  # B12 was not copied, so the item has no asset for it
    source = LocalStacSource(write_item(item))
    (acq,) = source.list_acquisitions()
    (decimated_copy / "B11.tif").unlink()
    with pytest.raises(ImageryReadError, match="file not found") as info:
        source.read(acq, ["B11"])
    assert "swir16" in str(info.value) and "B11.tif" in str(info.value)
    with pytest.raises(ImageryReadError, match="no asset for band B12"):
        source.read(acq, ["B12"])
    assert source.read(acq, ["B8A"]).shape == (1, 549, 549)


def test_bad_items_are_reported_and_the_others_listed(decimated_item_dict, decimated_dir: Path, write_item):
    good, other = two_items(localise_item(decimated_item_dict, decimated_dir))
    folder = write_item(good).parent
    write_item(other)
    (folder / "broken.json").write_text('{"type": "Feature", "id": "half')
    no_date = copy.deepcopy(good)
    no_date["id"] = "no-date"
    no_date["properties"].pop("datetime")
    write_item(no_date)
    no_grid = copy.deepcopy(good)
    no_grid["id"] = "no-grid"
    for asset in no_grid["assets"].values():
        asset.pop("proj:transform", None)
        asset["href"] = "/nonexistent/x.tif"
    write_item(no_grid)
    (folder / "notes.json").write_text('{"hello": 1}')
    source = LocalStacSource(folder)
    acqs = source.list_acquisitions()
    assert [a.id for a in acqs] == [good["id"], other["id"]]
    reasons = dict(source.problems)
    assert len(source.problems) == 4, source.problems
    assert any("broken.json" in k for k in reasons)
    assert "no-grid" in reasons and "cannot determine its grid" in reasons["no-grid"]
    assert any("no-date" in k or "datetime" in v for k, v in reasons.items())
    assert any("notes.json" in k for k in reasons)


def test_missing_catalog_path(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        LocalStacSource(tmp_path / "nope")


def test_pystac_catalog_with_relative_hrefs_and_filters(
    decimated_item_dict, decimated_copy: Path, tmp_path: Path
):
    """A self-contained catalog written by pystac, COGs beside the items (the demo archive's layout)."""
    root = tmp_path / "catalog"
    catalog = pystac.Catalog("archive", "test archive")
    collection = pystac.Collection(
        "sentinel-2-l2a",
        "S2 L2A",
        pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
    )
    catalog.add_child(collection)
    dates = ["2020-02-19", "2020-02-24", "2020-03-05"]
    for i, day in enumerate(dates):
        d = localise_item(decimated_item_dict, decimated_copy)
        d["id"] = f"S2A_29RKH_{day.replace('-', '')}_0_L2A"
        d["properties"]["datetime"] = f"{day}T11:34:25Z"
        if i == 2:  # another tile on the last date
            d["properties"]["mgrs:grid_square"] = "KJ"
            d["properties"]["grid:code"] = "MGRS-29RKJ"
            d["id"] = d["id"].replace("29RKH", "29RKJ")
        item = pystac.Item.from_dict(d)
        collection.add_item(item)
    catalog.normalize_hrefs(str(root))
    for item in catalog.get_items(recursive=True):
        folder = Path(item.get_self_href()).parent
        folder.mkdir(parents=True, exist_ok=True)
        for asset in item.assets.values():
            src = Path(asset.href)
            shutil.copy(src, folder / src.name)
            asset.href = f"./{src.name}"
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    shutil.rmtree(decimated_copy)  # only the catalog's own copies remain

    source = LocalStacSource(root / "catalog.json")
    all_acqs = source.list_acquisitions()
    assert [a.id for a in all_acqs] == [
        "S2A_29RKH_20200219_0_L2A",
        "S2A_29RKH_20200224_0_L2A",
        "S2A_29RKJ_20200305_0_L2A",
    ]
    assert source.problems == []
    written = json.loads(next(root.rglob("S2A_29RKH_20200219_0_L2A.json")).read_text())
    assert written["assets"]["red"]["href"] == "./B04.tif"
    assert [a.id for a in source.list_acquisitions(tile="T29RKH")] == [a.id for a in all_acqs[:2]]
    assert [a.id for a in source.list_acquisitions(start="2020-02-24", end="2020-03-05")] == [
        a.id for a in all_acqs[1:]
    ]
    assert [a.id for a in source.list_acquisitions(end="2020-02-19")] == [all_acqs[0].id]
    assert len(source.list_acquisitions(bbox=(-11.5, 24.5, -11.4, 24.6))) == 3  # inside the tile
    assert source.list_acquisitions(bbox=(2.0, 46.0, 3.0, 47.0)) == []  # France
    # the folder form finds catalog.json by itself
    assert [a.id for a in LocalStacSource(root).list_acquisitions()] == [a.id for a in all_acqs]
    da = source.read(all_acqs[2], ["B8A"])
    assert np.isfinite(da.values).mean() > 0.99


def test_scl_at_10m_takes_the_block_mode(decimated_item_dict, decimated_copy: Path, write_item) -> None:
    scl_path = decimated_copy / "SCL.tif"
    with rasterio.open(scl_path) as ds:
        profile, scl = ds.profile, ds.read(1)
    fine = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)
    fine[::2, ::2] = 7  # one pixel of four is a minority class
    fine[1::2, 1::2] = np.where(scl == 9, 0, fine[1::2, 1::2])  # nodata never wins either
    profile.update(
        width=fine.shape[1], height=fine.shape[0], transform=rasterio.Affine(100, 0, 199980, 0, -100, 2800020)
    )
    scl_path.unlink()
    with rasterio.open(scl_path, "w", **profile) as ds:
        ds.write(fine, 1)
    source = LocalStacSource(write_item(localise_item(decimated_item_dict, decimated_copy)))
    (acq,) = source.list_acquisitions()
    assert acq.grid.resolution == 200.0
    np.testing.assert_array_equal(source.read_scl(acq), scl)


def test_multiband_asset_sen2r(barbellino_dir: Path, write_item) -> None:
    """Tiny real L2A: one 11-band 10 m BOA file (eo:bands) and a 20 m SCL, nodata 65535."""
    write_item(barbellino_item(barbellino_dir, "20170703"))
    source = LocalStacSource(write_item(barbellino_item(barbellino_dir, "20190723")).parent)
    acqs = source.list_acquisitions()
    assert [a.datetime.year for a in acqs] == [2017, 2019]
    for acq in acqs:
        date = acq.id.split("_")[2]
        assert acq.grid.shape == (21, 12) and acq.grid.resolution == 20.0
        with rasterio.open(barbellino_dir / f"S2A2A_{date}_022_Barbellino_BOA_10.tif") as ds:
            boa = ds.read().astype(np.float64)
        da = source.read(acq, ["B04", "B08", "B11"])  # sen2r's BOA has no B8A
        for name in ("B04", "B08", "B11"):
            raw = boa[BARBELLINO_BANDS.index(name)]
            np.testing.assert_allclose(
                da.sel(band=name).values, block_mean(raw, nodata=65535) * 1e-4, rtol=1e-6, equal_nan=True
            )
        with rasterio.open(barbellino_dir / f"S2A2A_{date}_022_Barbellino_SCL_10.tif") as ds:
            np.testing.assert_array_equal(source.read_scl(acq), ds.read(1))
    assert {int(c) for c in np.unique(source.read_scl(acqs[0]))} == {2, 4, 5, 6, 7, 8, 9}


def test_item_collection_file(decimated_item_dict, decimated_dir: Path, tmp_path: Path) -> None:
    good, other = two_items(localise_item(decimated_item_dict, decimated_dir))
    bad = {"type": "Feature", "id": "bad-item", "properties": {}}  # no geometry, links, assets
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [other, bad, good]}))
    source = LocalStacSource(path)
    assert [a.id for a in source.list_acquisitions()] == [good["id"], other["id"]]
    assert [p[0] for p in source.problems] == ["bad-item"]


def test_acquisition_without_item_is_refused(decimated_source: LocalStacSource) -> None:
    from s3tr.imagery import Acquisition

    (acq,) = decimated_source.list_acquisitions()
    bare = Acquisition(acq.id, acq.tile, acq.datetime, acq.grid)
    with pytest.raises(ImageryReadError, match="carries no STAC item"):
        decimated_source.read(bare, ["B04"])
    with pytest.raises(ValueError, match="read_scl"):
        decimated_source.read(acq, ["B04", "SCL"])


def test_block_mode_ties_go_to_the_first_pixel() -> None:
    from s3tr.imagery._reader import block_mode

    blocks = np.array([[[4, 4, 9, 9], [9, 4, 4, 9], [3, 8, 8, 8], [5, 6, 7, 2]]], dtype=np.uint8)
    np.testing.assert_array_equal(block_mode(blocks), [[4, 9, 8, 5]])


def test_windows_read_together_equal_reads_window_by_window(decimated_source: LocalStacSource) -> None:
    (acq,) = decimated_source.list_acquisitions()
    # inner windows of several sizes and one overlapping the raster's edge (nodata outside)
    windows = [
        acq.grid.window(10, 20, 7, 9),
        acq.grid.window(300, 100, 31, 25),
        acq.grid.window(540, 540, 20, 20),
    ]
    bands = ["B04", "B03", "B02", "B08"]
    together = decimated_source.read_windows_with_scl(acq, bands, windows)
    assert len(together) == len(windows)
    for window, (values, scl) in zip(windows, together, strict=True):
        da, scl_one = decimated_source.read_with_scl(acq, bands, grid=window)
        assert values.dtype == np.float32 and values.shape == (4, *window.shape)
        np.testing.assert_array_equal(values, da.values)
        np.testing.assert_array_equal(scl, scl_one)
    assert decimated_source.read_windows_with_scl(acq, bands, []) == []
    with pytest.raises(ValueError, match="distinct reflectance bands"):
        decimated_source.read_windows_with_scl(acq, ["B04", "SCL"], windows)
