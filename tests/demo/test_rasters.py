"""The demo COGs: the real 31TBM grid, L2A encoding, plausible reflectance, clouds and SCL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio

from s3tr.demo import DemoPaths

TILE_X0, TILE_Y0 = 199980.0, 5200020.0


@pytest.fixture(scope="module")
def items(season: DemoPaths) -> list[pystac.Item]:
    return sorted(
        pystac.Catalog.from_file(str(season.catalog)).get_items(recursive=True), key=lambda i: i.datetime
    )


def _read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(1)


def _reflectance(item: pystac.Item, key: str) -> np.ndarray:
    rb = item.assets[key].extra_fields["raster:bands"][0]
    return _read(item, key).astype(np.float32) * rb["scale"] + rb["offset"]


def test_cogs_sit_on_the_31tbm_grid(items: list[pystac.Item]) -> None:
    item = items[0]
    shapes = {}
    for key in ("blue", "green", "red", "nir", "rededge1", "nir08", "swir16", "swir22", "scl"):
        with rasterio.open(item.assets[key].get_absolute_href()) as src:
            assert src.crs.to_epsg() == 32631
            res = 10.0 if key in ("blue", "green", "red", "nir") else 20.0
            assert src.res == (res, res)
            t = src.transform
            # Aligned to the tile's pixel grid, and inside the tile (109.8 km square).
            assert ((t.c - TILE_X0) / res).is_integer() and ((TILE_Y0 - t.f) / res).is_integer()
            assert t.c >= TILE_X0 and t.c + src.width * res <= TILE_X0 + 109_800
            assert t.f - src.height * res >= TILE_Y0 - 109_800 and t.f <= TILE_Y0
            assert src.nodata == 0
            assert src.dtypes[0] == ("uint8" if key == "scl" else "uint16")
            assert src.profile["tiled"] and src.compression.name.lower() == "zstd"
            shapes[res] = (src.height, src.width, t.c, t.f)
    # The 10 m and 20 m windows cover exactly the same footprint.
    assert shapes[10.0][0] == 2 * shapes[20.0][0] and shapes[10.0][1] == 2 * shapes[20.0][1]
    assert shapes[10.0][2:] == shapes[20.0][2:]


def test_dn_encoding_and_ranges(items: list[pystac.Item]) -> None:
    for item in items[:6]:
        for key in ("blue", "red", "nir08", "swir16"):
            dn = _read(item, key)
            assert dn.min() > 0, "0 is nodata: a valid pixel must never be 0"
            refl = _reflectance(item, key)
            assert refl.min() > -0.01 and refl.max() < 0.8
        scl = _read(item, "scl")
        assert set(np.unique(scl)) <= {3, 4, 5, 6, 7, 8, 9, 10}


def test_clouds_are_bright_and_flagged(items: list[pystac.Item]) -> None:
    seen = 0
    for item in items:
        scl = _read(item, "scl")
        thick, medium, clear_veg = scl == 9, scl == 8, scl == 4
        if thick.sum() < 20 or clear_veg.sum() < 50:
            continue
        blue = _reflectance(item, "blue").reshape(scl.shape[0], 2, scl.shape[1], 2).mean(axis=(1, 3))
        nir = _reflectance(item, "nir08")
        assert np.median(blue[thick]) > 0.25 > 0.1 > np.median(blue[clear_veg])
        assert np.median(blue[medium]) > np.median(blue[clear_veg]) + 0.08
        shadow = scl == 3
        if shadow.sum() > 50:
            assert np.median(nir[shadow]) < 0.6 * np.median(nir[clear_veg])
        seen += 1
    assert seen >= 2
    covers = [i.properties["eo:cloud_cover"] for i in items]
    assert min(covers) < 10 and max(covers) > 40


def test_river_and_ponds_are_water(items: list[pystac.Item]) -> None:
    clear = [i for i in items if i.properties["eo:cloud_cover"] < 5]
    assert clear
    for item in clear:
        scl = _read(item, "scl")
        water, veg = scl == 6, scl == 4
        assert 0 < water.mean() < 0.1
        nir, swir = _reflectance(item, "nir08"), _reflectance(item, "swir16")
        # Water absorbs the near and short-wave infrared.
        assert np.median(nir[water]) < 0.1 < np.median(nir[veg])
        assert np.median(swir[water]) < 0.05


def _crop_ndvi(series: pd.DataFrame, truth: pd.DataFrame, code: str, months: tuple[str, ...]) -> pd.Series:
    ids = truth.loc[(truth["true_code"] == code) & (truth["scenario"] == "ok"), "id_parcel"]
    s = series[series["id_parcel"].isin(ids) & (series["valid"] > 0.9) & series["date"].str[5:7].isin(months)]
    return s["ndvi"]


def test_ndvi_follows_crop_phenology(season: DemoPaths, series: pd.DataFrame) -> None:
    truth = pd.read_csv(season.truth_dir / "parcels.csv", dtype={"id_parcel": str})
    crops = set(truth.loc[truth["scenario"] == "ok", "true_code"])
    checked = 0
    if "BTH" in crops:
        # Winter wheat: green canopy in May, ripe or harvested by late July.
        may, late = _crop_ndvi(series, truth, "BTH", ("05",)), _crop_ndvi(series, truth, "BTH", ("07",))
        assert may.median() > 0.7 and late.median() < 0.45
        checked += 1
    for summer in ("MIS", "TRN"):
        if summer in crops:
            # Summer crops: bare seedbed in early May, full canopy in July.
            early, july = (
                _crop_ndvi(series, truth, summer, ("05",)),
                _crop_ndvi(series, truth, summer, ("07",)),
            )
            assert early.median() < 0.35 and july.max() > 0.75
            checked += 1
    grass = truth.loc[truth["true_code"].isin(["PPH", "PRL", "PTR"]), "id_parcel"]
    g = series[series["id_parcel"].isin(grass) & (series["valid"] > 0.9)]["ndvi"]
    assert 0.5 < g.median() < 0.9
    assert checked >= 2


def test_mowing_events_show_as_ndvi_drops(season: DemoPaths, series: pd.DataFrame) -> None:
    events = pd.read_csv(season.truth_dir / "events.csv", dtype={"id_parcel": str})
    clear = series[series["valid"] > 0.9].assign(date=lambda d: pd.to_datetime(d["date"]))
    drops = []
    for ev in events[events["event"] == "mowing"].itertuples():
        d = pd.Timestamp(ev.date)
        s = clear[clear["id_parcel"] == ev.id_parcel]
        before = s[(s["date"] < d) & (s["date"] >= d - pd.Timedelta(days=8))]
        after = s[(s["date"] >= d) & (s["date"] <= d + pd.Timedelta(days=6))]
        if len(before) and len(after):
            drops.append(before["ndvi"].iloc[-1] - after["ndvi"].iloc[0])
    assert len(drops) >= 3
    drops = np.array(drops)
    # Sen4CAP detects a drop of >= 0.12; Sinergise measured ~0.15 on average on real meadows.
    assert np.median(drops) >= 0.15
    assert (drops >= 0.12).mean() >= 0.75
    assert drops.max() < 0.6
