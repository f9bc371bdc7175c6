from __future__ import annotations

import numpy as np
import pandas as pd

from s3tr.markers.activity import ActivityParams, detect_activity
from s3tr.markers.bare_soil import BareSoilParams, bare_soil_marker, detect_bare_soil
from s3tr.markers.mowing import MowingParams, mowing_marker
from s3tr.markers.table import normalize_timeseries


def test_activity_true_on_mowing_false_without(make_grass):
    t = normalize_timeseries(
        pd.concat([make_grass("mown", mowings=("2023-06-10",)), make_grass("idle", seed=3)])
    )
    a = detect_activity(t).set_index("parcel_id")
    assert bool(a.loc["mown", "activity"]) and a.loc["mown", "evidence"] == "mowing"
    assert not bool(a.loc["idle", "activity"])
    # A quiet, dense series: "no activity" at the cap, never above (light grazing cannot be ruled out).
    assert (
        a.loc["idle", "status"] == "ok"
        and a.loc["idle", "confidence"] == ActivityParams().max_inactive_confidence
    )
    assert a.loc["idle", "n_valid"] > 30 and a.loc["idle", "max_gap_days"] <= 10


def test_no_activity_confidence_needs_a_quiet_series(make_grass):
    """Confidence in "none" drops with a faint mowing-like fall or a lasting depression of the sward."""
    quiet = make_grass("quiet", seed=3)
    faint = make_grass("faint", seed=3, mowings=("2023-07-01",), drop=0.12)
    grazed = make_grass("grazed", seed=3)
    summer = pd.to_datetime(grazed["date"]).between("2023-05-15", "2023-07-31")
    grazed.loc[summer, "ndvi"] -= 0.22  # a herd keeps the sward low for ten weeks
    t = normalize_timeseries(pd.concat([quiet, faint, grazed]))
    uncapped = ActivityParams(max_inactive_confidence=1.0)
    a = detect_activity(t, params=uncapped).set_index("parcel_id")
    assert not a["activity"].any(), a
    assert a.loc["quiet", "confidence"] >= 0.9
    assert a.loc["faint", "confidence"] < a.loc["quiet", "confidence"] - 0.2
    assert a.loc["grazed", "confidence"] < 0.6 <= a.loc["quiet", "confidence"]
    capped = detect_activity(t).set_index("parcel_id")
    assert (capped["confidence"] <= ActivityParams().max_inactive_confidence).all()


def test_activity_not_enough_data_when_sparse(make_grass):
    sparse = make_grass("sparse", every_days=45)
    one = pd.DataFrame({"parcel_id": ["one"], "date": ["2023-06-01"], "ndvi": [0.7]})
    a = detect_activity(normalize_timeseries(pd.concat([sparse, one]))).set_index("parcel_id")
    assert (a["status"] == "not_enough_data").all()
    assert not a["activity"].any()


def test_activity_window_limits_evidence(make_grass):
    t = normalize_timeseries(make_grass("late", mowings=("2023-09-01",)))
    early = detect_activity(t, params=ActivityParams(window=("04-01", "07-31")))
    late = detect_activity(t, params=ActivityParams(window=("04-01", "10-31")))
    assert not early["activity"].iloc[0] and late["activity"].iloc[0]


def _ploughed(pid: str, *, soil_dates: int) -> pd.DataFrame:
    dates = pd.date_range("2023-03-01", "2023-10-31", freq="10D")
    ndvi = np.full(dates.size, 0.75)
    bsi = np.full(dates.size, -0.25)
    k = 12
    ndvi[k : k + soil_dates] = 0.12
    bsi[k : k + soil_dates] = 0.15
    return pd.DataFrame({"parcel_id": pid, "date": dates, "ndvi": ndvi, "bsi": bsi})


def test_bare_soil_persistent_vs_single_date():
    t = normalize_timeseries(pd.concat([_ploughed("plough", soil_dates=3), _ploughed("blip", soil_dates=1)]))
    ev = detect_bare_soil(t)
    plough = ev[ev.parcel_id == "plough"]
    assert len(plough) == 1 and plough.iloc[0]["confidence"] >= 0.6
    assert (plough.iloc[0]["end"] - plough.iloc[0]["start"]).days == 20
    # A single soil-like date that recovers at once is a cloud/shadow, not a ploughing.
    assert ev[ev.parcel_id == "blip"].empty


def _after_winter(pid: str, *, green_before: bool) -> pd.DataFrame:
    """A meadow under snow in January-February, soil-like from March, green from May (10-day revisit)."""
    dates = pd.date_range("2023-01-05", "2023-07-31", freq="10D")
    month = dates.month.to_numpy()
    ndvi = np.where(month <= 2, 0.02, np.where(month <= 4, 0.21, 0.72))
    bsi = np.where(month <= 2, -0.3, np.where(month <= 4, 0.18, -0.25))
    if green_before:
        # A green winter sward (western France) until mid-February: then the soil run is a lost cover.
        winter = dates < "2023-02-20"
        ndvi, bsi = np.where(winter, 0.7, ndvi), np.where(winter, -0.25, bsi)
    return pd.DataFrame({"parcel_id": pid, "date": dates, "ndvi": ndvi, "bsi": bsi})


def test_a_sward_soil_like_since_the_winter_is_no_ploughing():
    """Ploughing is a loss of green cover: a run after snow, with no green date before it, stays doubtful."""
    dormant = _after_winter("dormant", green_before=False)
    t = normalize_timeseries(pd.concat([dormant, _after_winter("ploughed", green_before=True)]))
    best = detect_bare_soil(t).groupby("parcel_id")["confidence"].max()
    assert best["ploughed"] >= 0.8  # the rule sets' red
    assert 0.4 <= best["dormant"] <= 0.6  # shown, but never the proof of a red


def _brown_after_cut(pid: str, *, b11: float, b12: float, as_index: bool = False) -> pd.DataFrame:
    """A green sward that turns soil-like for 30 days in July, with the given SWIR over the brown spell."""
    t = _ploughed(pid, soil_dates=4)
    green = t["ndvi"] > 0.5
    t["B11"], t["B12"] = np.where(green, 0.2, b11), np.where(green, 0.1, b12)
    if as_index:
        t["ndti"] = (t["B11"] - t["B12"]) / (t["B11"] + t["B12"])
        t = t.drop(columns=["B11", "B12"])
    return t


def test_a_sward_scorched_brown_is_no_ploughing():
    """Dry grass absorbs B12 (cellulose, 2.1 um): a high tillage index marks vegetation, not soil."""
    frames = [
        _brown_after_cut("scorched", b11=0.40, b12=0.29),  # NDTI 0.16, as the Slovak droughts of 2022
        _brown_after_cut("ploughed", b11=0.30, b12=0.26),  # NDTI 0.07, bare soil
        _brown_after_cut("scorched_index", b11=0.40, b12=0.29, as_index=True),  # an ndti column instead
        _ploughed("no_swir", soil_dates=4),  # no B11/B12 nor ndti: the test stands aside
    ]
    best = detect_bare_soil(normalize_timeseries(pd.concat(frames))).groupby("parcel_id")["confidence"].max()
    assert best["ploughed"] >= 0.8 and best["no_swir"] >= 0.8  # the rule sets' red
    assert 0.4 <= best["scorched"] <= 0.6 and 0.4 <= best["scorched_index"] <= 0.6  # shown, never proof
    off = detect_bare_soil(normalize_timeseries(frames[0]), params=BareSoilParams(max_ndti=None))
    assert off["confidence"].max() >= 0.8  # the test is what made the difference
    # The evidence says why each event is doubted, for the instructor's explanation.
    from s3tr.markers import compute_evidence

    ids = ["scorched", "ploughed"]
    decl = pd.DataFrame({"id_parcel": ids, "code_cultu": "PPH", "code_group": 18})
    ev = compute_evidence(pd.concat(frames[:2]), decl).set_index("parcel_id")
    assert ev.loc["scorched", "bare_soil_doubts"] == "dry_vegetation"
    assert ev.loc["ploughed", "bare_soil_doubts"] == ""


def test_bare_soil_events_say_why_they_are_doubted():
    single = _ploughed("single", soil_dates=1)
    single.loc[13, "ndvi"] = 0.35  # no regrowth at the next date: one soil-like date after a collapse
    t = normalize_timeseries(pd.concat([_after_winter("dormant", green_before=False), single]))
    doubts = detect_bare_soil(t).groupby("parcel_id")["doubt"].agg(list).to_dict()
    assert doubts == {"dormant": ["no_green_cover"], "single": ["single_date"]}


def test_a_ploughing_unchecked_for_dry_vegetation_is_reported(caplog):
    """Without NDTI (nor B11/B12) a ploughing-level run rests on NDVI and BSI alone: the log says so."""
    with caplog.at_level("WARNING", logger="s3tr.markers.bare_soil"):
        detect_bare_soil(normalize_timeseries(_brown_after_cut("checked", b11=0.30, b12=0.26)))
    assert "dry vegetation" not in caplog.text
    with caplog.at_level("WARNING", logger="s3tr.markers.bare_soil"):
        detect_bare_soil(normalize_timeseries(_ploughed("no_swir", soil_dates=4)))
    assert "1 parcel(s) with a ploughing-level run could not be checked for dry vegetation" in caplog.text
    assert "no_swir" in caplog.text


def test_bare_soil_bsi_vetoes_dark_vegetation():
    t = _ploughed("water", soil_dates=3)
    t.loc[12:14, "bsi"] = -0.3  # low NDVI but not soil-like BSI (water, shadow)
    assert detect_bare_soil(normalize_timeseries(t)).empty
    status = bare_soil_marker(normalize_timeseries(t)).status
    assert status["status"].tolist() == ["ok"]


def _depression_by_definition(d: np.ndarray, v: np.ndarray) -> float:
    """The running-median depression written plainly with numpy (the compiled kernel must agree)."""
    if v.size < 4:
        return 0.0
    t = d.astype(np.int64)
    best = 0.0
    for k in range(v.size):
        sel = (t >= t[k]) & (t < t[k] + 30)
        if sel.sum() >= 2:
            best = max(best, float(np.max(v[: k + 1])) - float(np.median(v[sel])))
    return best


def test_depression_kernel_agrees_with_its_definition() -> None:
    from s3tr.markers.activity import _depression

    rng = np.random.default_rng(0)
    for trial in range(500):
        n = int(rng.integers(0, 50))
        d = np.sort(rng.choice(np.arange(250), n, replace=False)).astype("datetime64[D]")
        v = rng.uniform(0.0, 0.9, n)
        if trial % 5 == 0 and n:
            v[rng.integers(0, n)] = np.nan  # a NaN leaves its windows and everything after its peak out
        assert _depression(d, v) == _depression_by_definition(d, v)
    # a grazed sward: 0.8, then a month around 0.45
    d = np.arange(np.datetime64("2025-05-01"), np.datetime64("2025-08-01"), 6)
    v = np.where(d < np.datetime64("2025-06-15"), 0.8, 0.45)
    assert abs(_depression(d, v) - 0.35) < 1e-12


def test_bare_soil_in_every_year_of_a_multi_year_table():
    two = pd.concat(
        [
            _ploughed("field", soil_dates=3),
            _ploughed("field", soil_dates=3).assign(date=lambda d: d["date"] + pd.DateOffset(years=1)),
        ]
    )
    run = bare_soil_marker(normalize_timeseries(two))
    assert run.events["start"].dt.year.tolist() == [2023, 2024]
    assert run.status["status"].iloc[0] == "ok"


def test_activity_counts_only_the_events_of_its_own_window(make_grass):
    # Three years of one field, mown in the last only: events of every season are found, but the window
    # of month-days is the median year's, where nothing happened.
    years = pd.concat(
        make_grass("field", year=y, seed=k, mowings=("2023-06-10",) if y == 2023 else ())
        for k, y in enumerate((2021, 2022, 2023))
    )
    t = normalize_timeseries(years)
    events = mowing_marker(t).events
    assert events["start"].dt.year.tolist() == [2023]
    idle = detect_activity(t, mowing_events=events).iloc[0]
    assert not idle["activity"]
    mown = detect_activity(
        t, params=ActivityParams(window=("2023-04-01", "2023-10-31")), mowing_events=events
    )
    assert mown["activity"].iloc[0]


def test_a_mowing_straddling_the_window_start_is_no_activity_in_it(make_grass):
    t = normalize_timeseries(make_grass("march", mowings=("2023-03-30",)))
    events = mowing_marker(t, params=MowingParams(season=("04-01", "10-31"))).events
    # The detector keeps the event (it touches the season) ...
    assert len(events) == 1 and events["start"].iloc[0] < pd.Timestamp("2023-04-01") <= events["end"].iloc[0]
    # ... but the cut may have been in March: it proves nothing about April to October.
    a = detect_activity(t, mowing_events=events).iloc[0]
    assert not a["activity"] and a["evidence"] != "mowing"


def test_activity_says_it_judged_one_season_of_a_multi_year_series(make_grass, caplog):
    """A per-parcel answer is about one campaign: a series of two years is judged on one, and says so."""
    table = normalize_timeseries(
        pd.concat(
            [
                make_grass("two_years", year=2022),
                make_grass("two_years", year=2023, mowings=("2023-06-10",)),
                make_grass("one_year", year=2023),
            ]
        )
    )
    with caplog.at_level("WARNING", logger="s3tr.markers.table"):
        a = detect_activity(table).set_index("parcel_id")
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("activity:")]
    assert len(warned) == 1 and "1 parcel(s)" in warned[0] and "two_years" in warned[0]
    assert "one_year" not in warned[0]
    assert len(a) == 2  # still one answer per parcel


def test_one_season_per_parcel_is_not_warned_about(make_grass, caplog):
    # Lead-in from the previous autumn is not a second season.
    autumn = make_grass("p", year=2022)
    autumn = autumn[pd.to_datetime(autumn["date"]) >= "2022-10-01"]
    table = normalize_timeseries(pd.concat([autumn, make_grass("p", year=2023)]))
    with caplog.at_level("WARNING", logger="s3tr.markers.table"):
        detect_activity(table)
    assert not [r for r in caplog.records if "several seasons" in r.getMessage()]
