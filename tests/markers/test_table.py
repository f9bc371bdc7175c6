from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from s3tr.errors import S3trError
from s3tr.markers.table import (
    MarkerInputError,
    TimeSeriesFileError,
    iter_series,
    normalize_timeseries,
    parcel_quality,
    parse_season,
    read_timeseries,
    season_bounds,
    season_windows,
)


def test_unsorted_duplicates_unknown_columns_and_case(tmp_path):
    raw = pd.DataFrame(
        {
            "PARCEL_ID": ["b", "a", "a", "a", "b"],
            "Date": ["2023-05-10", "2023-05-20", "2023-05-01", "2023-05-20", "2023-05-01"],
            "NDVI": [0.5, 0.7, 0.6, 0.9, 0.4],
            "valid": [1, 1, 1, 0, 1],
            "weird": ["x"] * 5,
        }
    )
    path = tmp_path / "ts.csv"
    raw.to_csv(path, index=False)
    t = read_timeseries(path)
    assert list(t.columns) == ["parcel_id", "date", "valid", "ndvi"]
    assert t["parcel_id"].tolist() == ["a", "a", "b", "b"]
    assert t["date"].is_monotonic_increasing is False  # sorted within parcel, not globally
    a = t[t.parcel_id == "a"]
    # The duplicate (a, 2023-05-20) keeps the valid row's value, not the mean with the invalid one.
    assert a["ndvi"].tolist() == pytest.approx([0.6, 0.7])
    assert any("duplicate" in m and "ts.csv" in m for m in t.attrs["issues"])


def test_ndvi_from_bands_and_nan_is_invalid():
    raw = pd.DataFrame(
        {
            "parcel_id": ["p"] * 3,
            "date": ["2023-01-01", "2023-01-02", "2023-01-03"],
            "B04": [0.05, 0.1, np.nan],
            "B08": [0.45, 0.3, 0.3],
            "B8A": [0.35, np.nan, np.nan],
        }
    )
    t = normalize_timeseries(raw)
    # B8A is preferred over B08 where present.
    assert t["ndvi"].iloc[0] == pytest.approx((0.35 - 0.05) / 0.4)
    assert t["ndvi"].iloc[1] == pytest.approx((0.3 - 0.1) / 0.4) or np.isnan(t["ndvi"].iloc[1])
    assert t["valid"].tolist()[2] is False or not t["valid"].iloc[2]


def test_a_normalised_table_that_lost_its_valid_column_is_normalised_again():
    t = normalize_timeseries(
        pd.DataFrame({"parcel_id": ["p", "p"], "date": ["2023-05-01", "2023-05-11"], "ndvi": [0.6, 0.7]})
    )
    stripped = t.drop(columns=["valid"])
    assert stripped.attrs.get("normalized")  # pandas keeps the mark after the drop
    (series,) = list(iter_series(stripped))
    assert series.valid.tolist() == [True, True]
    assert series.values["ndvi"].tolist() == pytest.approx([0.6, 0.7])


def test_bad_dates_are_reported_with_row_not_raised():
    raw = pd.DataFrame({"parcel_id": ["p", "p", ""], "date": ["2023-01-01", "not a date", "2023-01-03"]})
    raw["ndvi"] = 0.5
    t = normalize_timeseries(raw, source="f.csv")
    assert len(t) == 1
    msgs = " ".join(t.attrs["issues"])
    assert "f.csv" in msgs and "row(s) 2" in msgs and "row(s) 3" in msgs


def test_missing_columns_and_file_errors(tmp_path):
    with pytest.raises(MarkerInputError, match="parcel_id"):
        normalize_timeseries(pd.DataFrame({"date": ["2023-01-01"], "ndvi": [0.2]}))
    with pytest.raises(TimeSeriesFileError, match="not found"):
        read_timeseries(tmp_path / "missing.csv")
    assert issubclass(TimeSeriesFileError, S3trError) and issubclass(TimeSeriesFileError, ValueError)


def test_quality_statuses():
    raw = pd.DataFrame(
        {
            "parcel_id": ["one", "none", "none", "ok", "ok", "ok"],
            "date": ["2023-05-01", "2023-05-01", "2023-05-05", "2023-05-01", "2023-05-11", "2023-06-01"],
            "valid": [1, 0, 0, 1, 1, 1],
            "ndvi": [0.5, 0.5, 0.5, 0.5, 0.6, 0.7],
        }
    )
    q = parcel_quality(normalize_timeseries(raw)).set_index("parcel_id")
    assert q.loc["one", "status"] == "not_enough_data"
    assert q.loc["none", "status"] == "no_valid_data"
    assert q.loc["ok", "status"] == "ok" and q.loc["ok", "max_gap_days"] == 21
    series = {s.parcel_id: s for s in iter_series(normalize_timeseries(raw))}
    assert series["ok"].dates.dtype == np.dtype("datetime64[D]")


def test_parquet_with_datetime_dates_and_idempotence(tmp_path):
    raw = pd.DataFrame(
        {
            "parcel_id": [1, 1, 2],
            "date": pd.to_datetime(["2023-05-02", "2023-05-01", "2023-05-01"]),
            "ndvi": [0.5, 0.4, 0.3],
        }
    )
    raw.to_parquet(tmp_path / "ts.parquet")
    t = read_timeseries(tmp_path / "ts.parquet")
    assert t["parcel_id"].tolist() == ["1", "1", "2"]
    assert t["date"].dt.strftime("%Y-%m-%d").tolist() == ["2023-05-01", "2023-05-02", "2023-05-01"]
    again = normalize_timeseries(t)
    pd.testing.assert_frame_equal(again, t)


def test_bands_in_digital_numbers_are_rescaled_and_reported(make_grass):
    from s3tr.markers.mowing import detect_mowing

    raw = make_grass(mowings=("2023-06-12",))
    # Bands that agree with the NDVI (a green sward: NIR high, red low, SWIR up when it is cut).
    ndvi = raw["ndvi"].to_numpy()
    raw["B08"] = 0.32
    raw["B04"] = 0.32 * (1 - ndvi) / (1 + ndvi)
    raw["B02"] = 0.6 * raw["B04"]
    raw["B11"] = 0.30 - 0.15 * ndvi
    raw = raw.drop(columns=["ndvi"])
    bands = ["B02", "B04", "B08", "B11"]
    dn = raw.assign(**{c: (raw[c] * 10_000).round() for c in bands})
    t = normalize_timeseries(dn, source="l2a.csv")
    assert t[bands].max().max() <= 1.0
    assert any("l2a.csv" in m and "digital numbers" in m for m in t.attrs["issues"])
    ref = normalize_timeseries(raw)
    assert len(detect_mowing(ref)) == 1
    pd.testing.assert_frame_equal(detect_mowing(t), detect_mowing(ref), atol=1e-3)
    # Reflectances already 0..1 are left alone.
    assert not any("digital numbers" in m for m in ref.attrs["issues"])


def _days(first: str, last: str) -> np.ndarray:
    return pd.date_range(first, last, freq="5D").to_numpy().astype("datetime64[D]")


def _iso(windows) -> list[tuple[str, str]]:
    return [(str(lo), str(hi)) for lo, hi in windows]


def test_season_windows_one_per_year_a_table_covers():
    season = ("04-01", "10-31")
    # Three calendar years of one parcel: three seasons, not only the median year's.
    assert _iso(season_windows(season, _days("2021-01-03", "2023-12-28"))) == [
        ("2021-04-01", "2021-10-31"),
        ("2022-04-01", "2022-10-31"),
        ("2023-04-01", "2023-10-31"),
    ]
    # Six weeks of lead-in from the previous autumn are context, not a season.
    assert _iso(season_windows(season, _days("2021-09-20", "2022-12-20"))) == [("2022-04-01", "2022-10-31")]
    # A series shorter than half a season still gets its median year's season.
    short = _days("2022-05-01", "2022-07-15")
    assert season_windows(season, short) == [season_bounds(season, short)]
    # Full dates are one window, whatever the series covers.
    assert _iso(season_windows(("2022-05-01", "2022-06-09"), _days("2021-01-03", "2023-12-28"))) == [
        ("2022-05-01", "2022-06-09")
    ]
    # A winter season ends in the next year.
    assert _iso(season_windows(("11-01", "02-28"), _days("2022-10-01", "2023-03-31"))) == [
        ("2022-11-01", "2023-02-28")
    ]


def test_a_season_ending_on_29_february_in_every_year():
    """parse_season accepts 02-29; a year without it ends the season on the 28th instead of crashing."""
    season = parse_season("11-01,02-29")
    assert _iso(season_windows(season, _days("2022-10-01", "2024-03-31"))) == [
        ("2022-11-01", "2023-02-28"),
        ("2023-11-01", "2024-02-29"),
    ]


@pytest.mark.parametrize("scale", [100, 10_000])
def test_indices_stored_scaled_are_read_as_ratios(make_grass, scale):
    from s3tr.markers.mowing import detect_mowing

    raw = make_grass(mowings=("2023-06-12",))
    raw["ndmi"] = 0.4 * raw["ndvi"] - 0.1
    scaled = raw.assign(ndvi=(raw["ndvi"] * scale).round(), ndmi=(raw["ndmi"] * scale).round())
    t = normalize_timeseries(scaled, source="int16.csv")
    ref = normalize_timeseries(raw)
    assert t["ndvi"].abs().max() <= 1.0 and t["ndmi"].abs().max() <= 1.0
    assert sum("int16.csv" in m and "scaled by" in m for m in t.attrs["issues"]) == 2
    pd.testing.assert_frame_equal(detect_mowing(t), detect_mowing(ref), atol=1e-2)
    assert len(detect_mowing(t)) == 1
    # Ratios, even with a few wild values (a broken pixel), are left alone.
    wild = raw.assign(ndvi=raw["ndvi"].where(raw.index != 3, 40.0))
    assert not any("scaled by" in m for m in normalize_timeseries(wild).attrs["issues"])


def test_dates_other_than_iso_are_read_day_first_and_reported():
    raw = pd.DataFrame(
        {
            "parcel_id": ["a"] * 5,
            "date": ["2023-06-12", "2023-06-17T01:30:00+02:00", "20230622", "27/06/2023", "2/7/2023"],
            "ndvi": [0.8, 0.8, 0.7, 0.5, 0.6],
        }
    )
    t = normalize_timeseries(raw, source="fr.csv")
    assert t["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-06-12",
        "2023-06-17",  # the day as written, not its UTC day
        "2023-06-22",
        "2023-06-27",
        "2023-07-02",  # 2 July, the French way, not 7 February
    ]
    assert any(
        "fr.csv" in m and "2 date(s) not in YYYY-MM-DD, read day first" in m for m in t.attrs["issues"]
    )
    assert not any("day first" in m for m in normalize_timeseries(raw.iloc[:3]).attrs["issues"])
