"""SeriesStore: idempotent appends, sorted times, new parcels, crash leftovers, long-table export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from s3tr.extract import SeriesStore, SeriesStoreError, to_table

NAMES = ("ndvi", "ndmi", "ndwi", "bsi")


def acquisition(ids: list[str], when: str, seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n = len(ids)
    data = {}
    for name in NAMES:
        data[name] = (("parcel", "time"), rng.random((n, 1)).astype(np.float32))
        data[f"{name}_std"] = (("parcel", "time"), rng.random((n, 1)).astype(np.float32))
    data["count"] = (("parcel", "time"), rng.integers(0, 9, (n, 1)).astype(np.int32))
    data["valid_fraction"] = (("parcel", "time"), rng.random((n, 1)).astype(np.float32))
    return xr.Dataset(data, coords={"parcel": ids, "time": [np.datetime64(when, "ns")]})


def test_append_is_idempotent_and_sorted(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path / "31TBM.zarr")
    a = acquisition(["a", "b", "c"], "2024-05-04T10:30", 1)
    b = acquisition(["a", "b", "c"], "2024-05-01T10:30", 2)
    store.append(a)
    store.append(b)  # earlier date after a later one
    store.append(a)  # same acquisition again
    assert list(store.times()) == [pd.Timestamp("2024-05-01T10:30"), pd.Timestamp("2024-05-04T10:30")]
    ds = store.load()
    assert ds.sizes == {"parcel": 3, "time": 2}
    np.testing.assert_array_equal(ds["ndvi"].values[:, 1], a["ndvi"].values[:, 0])
    np.testing.assert_array_equal(ds["count"].values[:, 0], b["count"].values[:, 0])
    assert ds["count"].dtype == np.int32 and ds["ndvi"].dtype == np.float32
    # Re-adding with other values (reprocessed acquisition, parcels in another order) replaces it.
    a2 = acquisition(["c", "a", "b"], "2024-05-04T10:30", 3)
    store.append(a2)
    ds = store.load()
    assert ds.sizes["time"] == 2
    np.testing.assert_array_equal(ds["ndvi"].sel(parcel="c").values[1], a2["ndvi"].sel(parcel="c").values[0])
    assert len([p for p in store.path.iterdir() if p.name.startswith("t")]) == 2


def test_new_parcels_and_crash_leftovers(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path / "s.zarr")
    store.append(acquisition(["a", "b"], "2024-05-01", 1))
    store.append(acquisition(["b", "d"], "2024-05-02", 2))
    ds = store.load()
    assert list(ds["parcel"].values) == ["a", "b", "d"]
    assert np.isnan(ds["ndvi"].sel(parcel="d").values[0]) and ds["count"].sel(parcel="d").values[0] == 0
    assert np.isnan(ds["ndvi"].sel(parcel="a").values[1])
    # A crash mid-append leaves a temporary directory and maybe a slot without metadata: ignored.
    (tmp_path / ".s.zarr.tmp-dead").mkdir()
    (store.path / "t20240503T000000000000-v000001").mkdir()
    before = store.load()
    xr.testing.assert_identical(before, ds)
    store.append(acquisition(["a", "b", "d"], "2024-05-03", 3))
    assert not (tmp_path / ".s.zarr.tmp-dead").exists()
    assert store.load().sizes["time"] == 3


def test_clear_dates_follow_the_long_table_rule(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path / "s.zarr")
    ids = [f"p{i}" for i in range(40)]
    for k, day in enumerate(("2024-05-01T10:30", "2024-05-06T10:30", "2024-05-11T10:30")):
        store.append(acquisition(ids, day, k))
    late = acquisition(["late", *ids[:5]], "2024-05-16T10:30", 9)  # a parcel added late, clear
    late["valid_fraction"][0, 0], late["count"][0, 0] = 1.0, 5
    store.append(late)
    wanted = {*ids[::3], "late", "unknown"}
    got = store.clear_dates(wanted, min_valid_fraction=0.5)
    table = store.to_table(min_valid_fraction=0.5)
    clear = table[table["valid"] & table["parcel_id"].isin(wanted)]
    expected = {pid: sorted(pd.to_datetime(g["date"]).dt.date) for pid, g in clear.groupby("parcel_id")}
    assert got == expected
    assert "late" in got and "unknown" not in got
    assert 0 < sum(map(len, got.values())) < 4 * len(wanted)  # some observations are not clear
    assert store.clear_dates(["unknown"]) == {}


def test_indices_held(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path / "s.zarr")
    assert store.indices() == ()
    store.append(acquisition(["a"], "2024-05-01", 1))
    assert store.indices() == tuple(sorted(NAMES))  # count and valid_fraction are no index


def test_bad_appends(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path / "s.zarr")
    store.append(acquisition(["a"], "2024-05-01", 1))
    with pytest.raises(SeriesStoreError, match="variables"):
        store.append(acquisition(["a"], "2024-05-02", 1).drop_vars("bsi"))
    with pytest.raises(SeriesStoreError, match="datetimes"):
        store.append(acquisition(["a"], "2024-05-02", 1).assign_coords(time=[0]))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(SeriesStoreError, match="not a series store"):
        SeriesStore(tmp_path / "other").append(acquisition(["a"], "2024-05-01", 1))


def test_long_table_and_export(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path / "s.zarr")
    ds = acquisition(["p1", "p2"], "2024-05-01T10:30", 1)
    ds["valid_fraction"][:] = [[0.5], [0.49]]
    ds["count"][:] = [[4], [4]]
    store.append(ds)
    store.append(
        acquisition(["p1", "p2"], "2024-05-06T10:30", 2).assign(count=(("parcel", "time"), [[0], [3]]))
    )
    table = store.to_table()
    assert list(table.columns[:3]) == ["parcel_id", "date", "valid"]
    assert list(table.columns[3:11]) == [v for n in NAMES for v in (n, f"{n}_std")]
    assert list(table.columns[-2:]) == ["count", "valid_fraction"]
    assert table["date"].tolist() == ["2024-05-01", "2024-05-06"] * 2
    assert table.loc[0, "valid"] == 1 and table.loc[2, "valid"] == 0  # 0.5 passes, 0.49 does not
    assert table.loc[1, "valid"] == 0  # count 0 is never valid
    assert to_table(store.load(), min_valid_fraction=0.4).loc[2, "valid"] == 1
    for ext in ("csv", "parquet"):
        out = store.export(tmp_path / f"series.{ext}")
        back = pd.read_csv(out, dtype={"parcel_id": str}) if ext == "csv" else pd.read_parquet(out)
        assert back["parcel_id"].tolist() == table["parcel_id"].tolist()
        np.testing.assert_allclose(back["ndvi"], table["ndvi"], rtol=1e-6)
