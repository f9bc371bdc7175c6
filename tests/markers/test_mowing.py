from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from s3tr.markers.evaluate import evaluate_mowing
from s3tr.markers.mowing import (
    CANDIDATE_FEATURES,
    MowingParams,
    _score,
    candidate_table,
    detect_mowing,
    fit_scorer,
    mowing_marker,
    season_evidence,
)
from s3tr.markers.table import normalize_timeseries
from s3tr.markers.tuning import (
    _fast_events,
    _prepare,
    label_candidates,
    negative_season_weights,
    thin_table,
)


def test_clear_mowing_found_with_right_interval(make_grass):
    t = normalize_timeseries(make_grass(mowings=("2023-06-12",)))
    ev = detect_mowing(t)
    assert len(ev) == 1
    start, end = ev.iloc[0]["start"], ev.iloc[0]["end"]
    # The interval brackets the cut: last date before it, first date after it (5-day revisit).
    assert start <= pd.Timestamp("2023-06-12") <= end
    assert (end - start).days <= 10
    assert ev.iloc[0]["confidence"] >= MowingParams().threshold


def test_two_mowings_and_no_mowing(make_grass):
    two = normalize_timeseries(make_grass("two", mowings=("2023-06-01", "2023-08-10")))
    none = normalize_timeseries(make_grass("none", seed=1))
    ev = detect_mowing(pd.concat([two, none]))
    assert ev["parcel_id"].tolist() == ["two", "two"]


def test_single_date_cloud_dip_is_not_a_mowing(make_grass):
    t = normalize_timeseries(make_grass(dips=("2023-07-01",)))
    assert detect_mowing(t).empty
    # The baseline rule falls for it: the test above is not vacuous.
    assert len(detect_mowing(t, params=MowingParams(method="baseline"))) == 1


def test_dip_next_to_a_real_mowing_does_not_hide_it(make_grass):
    t = normalize_timeseries(make_grass(mowings=("2023-06-15",), dips=("2023-08-20",)))
    ev = detect_mowing(t)
    assert len(ev) == 1 and ev.iloc[0]["start"] <= pd.Timestamp("2023-06-15") <= ev.iloc[0]["end"]


def test_bad_inputs_give_status_not_crash(make_grass):
    good = make_grass("good", mowings=("2023-06-12",))
    one = pd.DataFrame({"parcel_id": ["one"], "date": ["2023-06-01"], "ndvi": [0.7]})
    dead = make_grass("dead").assign(valid=0)
    nan = make_grass("nan", mowings=("2023-06-12",)).assign(ndvi=np.nan)
    raw = pd.concat([good, one, dead, nan]).sample(frac=1.0, random_state=0)  # shuffled rows
    res = mowing_marker(normalize_timeseries(raw))
    st = res.status.set_index("parcel_id")["status"]
    assert st["good"] == "ok"
    assert st["one"] == "not_enough_data"
    assert st["dead"] == "no_valid_data" and st["nan"] == "no_valid_data"
    assert res.events["parcel_id"].unique().tolist() == ["good"]


def test_raw_unsorted_table_is_accepted(make_grass):
    raw = make_grass(mowings=("2023-06-12",)).sample(frac=1.0, random_state=1)
    assert detect_mowing(raw).equals(detect_mowing(normalize_timeseries(raw)))


def test_season_evidence_adds_up_middling_falls():
    assert season_evidence(np.array([0.5, 0.5])) == 0.75
    assert season_evidence(np.array([0.5, 0.5]), "max") == 0.5
    assert season_evidence(np.array([])) == 0.0
    with pytest.raises(ValueError):
        season_evidence(np.array([0.5]), "mean")


def test_season_decision_gates_and_keeps_the_best_fall(make_grass):
    t = normalize_timeseries(make_grass(mowings=("2023-06-01", "2023-08-10")))
    # Once the season is decided, its best fall is an event even when no fall reaches the threshold ...
    decided = detect_mowing(t, params=MowingParams(threshold=1.0, parcel_threshold=0.05))
    assert len(decided) == 1 and decided.iloc[0]["confidence"] < 1.0
    # ... and further events still need the threshold; without a season decision every event does.
    assert detect_mowing(t, params=MowingParams(threshold=1.0, parcel_threshold=None)).empty
    assert len(detect_mowing(t, params=MowingParams(threshold=0.05, parcel_threshold=0.05))) == 2
    # Evidence short of the season threshold: no event at all, however strong each fall.
    assert detect_mowing(t, params=MowingParams(threshold=0.0, parcel_threshold=1.01)).empty


def test_tuning_fast_path_gives_the_marker_events(make_grass):
    raw = pd.concat(
        [
            make_grass("two", mowings=("2023-06-01", "2023-08-10")),
            make_grass("one", mowings=("2023-07-01",), dips=("2023-05-10",), seed=3),
            make_grass("none", seed=1),
            make_grass("weak", mowings=("2023-06-20",), drop=0.15, noise=0.03, seed=2),
        ]
    )
    t = normalize_timeseries(raw)
    for p in (
        MowingParams(),
        MowingParams(parcel_threshold=None, threshold=0.3, min_separation_days=20),
        MowingParams(parcel_evidence="max", parcel_threshold=0.2, threshold=0.8),
    ):
        fast = _fast_events(_prepare(t, p), p)
        assert fast.equals(mowing_marker(t, params=p).events), p


def test_negative_season_weights_weigh_only_never_mowed_plot_years():
    cands = pd.DataFrame({"parcel_id": ["mown", "mown", "idle", "idle", "idle"]})
    truth = pd.DataFrame({"parcel_id": ["mown"], "date": ["2023-06-01"]})
    assert negative_season_weights(cands, truth, 1.0) is None
    assert negative_season_weights(cands, truth, 3.0).tolist() == [1.0, 1.0, 3.0, 3.0, 3.0]


def test_weighting_never_mowed_falls_lowers_their_scores(make_grass):
    # Mown parcels with weak and strong cuts, and never-mown parcels with cut-like falls (as grazing gives):
    # a heavier weight on the latter must push their scores down relative to the unweighted fit.
    raw = [make_grass(f"m{k}", mowings=("2023-06-10", "2023-08-15"), seed=k) for k in range(6)]
    raw += [
        make_grass(f"w{k}", mowings=("2023-07-01",), drop=0.15, noise=0.03, seed=10 + k) for k in range(3)
    ]
    raw += [make_grass(f"g{k}", mowings=("2023-07-20",), drop=0.2, noise=0.02, seed=20 + k) for k in range(4)]
    t = normalize_timeseries(pd.concat(raw))
    truth = pd.DataFrame(
        [(f"m{k}", d) for k in range(6) for d in ("2023-06-10", "2023-08-15")]
        + [(f"w{k}", "2023-07-01") for k in range(3)],
        columns=["parcel_id", "date"],
    )
    cands = candidate_table(t)
    y = label_candidates(cands, truth)
    feats = ("pre", "low", "drop", "step", "regrowth")
    plain = fit_scorer(cands, y, features=feats)
    heavy = fit_scorer(cands, y, features=feats, sample_weight=negative_season_weights(cands, truth, 5.0))
    x = cands[list(CANDIDATE_FEATURES)].to_numpy(float)
    idle = cands["parcel_id"].str.startswith("g").to_numpy()
    assert idle.any() and y.any()
    assert heavy.score(x)[idle].mean() < plain.score(x)[idle].mean()


def test_a_slow_fall_before_the_cut_stays_out_of_its_interval() -> None:
    # A sward drying for three weeks (-0.006 a day), then cut on 2023-06-21 (-0.29 in one revisit).
    dates = pd.date_range("2023-04-01", "2023-09-30", freq="5D")
    day = (dates - pd.Timestamp("2023-06-01")).days.to_numpy()
    ndvi = np.full(day.size, 0.82)
    drying = (day > 0) & (day <= 20)
    ndvi[drying] = 0.82 - 0.006 * day[drying]
    after = day > 20
    ndvi[after] = np.minimum(0.82, 0.37 + 0.012 * (day[after] - 20))
    table = normalize_timeseries(pd.DataFrame({"parcel_id": "p", "date": dates, "ndvi": ndvi}))
    ev = detect_mowing(table)
    assert len(ev) == 1
    start, end = ev.iloc[0]["start"], ev.iloc[0]["end"]
    assert start <= pd.Timestamp("2023-06-21") <= end and (end - start).days <= 5
    # Without the penalty the interval takes in the whole slow fall.
    (row,) = candidate_table(table, params=MowingParams(span_penalty=0.0)).itertuples()
    assert (row.end - row.start).days >= 20


def test_a_table_of_several_years_per_parcel_is_monitored_every_year(make_grass) -> None:
    # Another country's ground truth may key its series by field, not by field-year.
    years = pd.concat(
        make_grass("field", year=y, mowings=(f"{y}-06-{10 + k}", f"{y}-08-{5 + k}"), seed=k)
        for k, y in enumerate((2021, 2022, 2023))
    )
    t = normalize_timeseries(years)
    for p in (MowingParams(), MowingParams(method="baseline")):
        run = mowing_marker(t, params=p)
        cuts = run.events["start"].dt.year.value_counts().sort_index()
        assert cuts.to_dict() == {2021: 2, 2022: 2, 2023: 2}, p.method
        # Every season is counted in the parcel's clear dates.
        assert run.status["n_valid"].iloc[0] == sum(
            int(((d >= f"{y}-04-01") & (d <= f"{y}-10-31")).sum())
            for y, d in ((y, years["date"]) for y in (2021, 2022, 2023))
        )
    robust = MowingParams()
    assert _fast_events(_prepare(t, robust), robust).equals(mowing_marker(t, params=robust).events)


def test_cuts_seen_late_in_a_sparse_series_are_trusted_more(make_grass) -> None:
    # A meadow cut every 35 days and seen every 10 or 12 days: each cut is first seen days after it, with
    # part of its fall already regrown. Before the sparse-series offset about half of them were missed.
    cuts = tuple(str(d.date()) for d in pd.date_range("2023-05-05", "2023-10-10", freq="35D"))
    off = MowingParams(gap_offset=0.0)
    for every in (10, 12):
        mown = [make_grass(f"m{s}", mowings=cuts, every_days=every, seed=s, drop=0.3) for s in range(10)]
        idle = [make_grass(f"i{s}", every_days=every, seed=s, noise=0.03) for s in range(10, 30)]
        table = normalize_timeseries(pd.concat(mown + idle))
        truth = pd.DataFrame([(f"m{s}", c) for s in range(10) for c in cuts], columns=["parcel_id", "date"])
        ids = table["parcel_id"].unique().tolist()
        with_offset = evaluate_mowing(detect_mowing(table), truth, ids)
        without = evaluate_mowing(detect_mowing(table, params=off), truth, ids)
        # Measured recall 0.92 / 0.72 (10 / 12 days) against 0.48 / 0.06, precision 1.0 either way.
        assert with_offset["recall"] >= 0.7 and with_offset["recall"] >= without["recall"] + 0.3, every
        assert with_offset["precision"] == 1.0, every


def test_the_sparse_series_offset_leaves_dense_series_alone(make_grass) -> None:
    dense = normalize_timeseries(make_grass(mowings=("2023-06-12", "2023-08-20"), every_days=5))
    sparse = normalize_timeseries(make_grass(mowings=("2023-06-12", "2023-08-20"), every_days=15))
    off = MowingParams(gap_offset=0.0)
    assert detect_mowing(dense).equals(detect_mowing(dense, params=off))
    x = candidate_table(sparse, params=off).head(1)[list(CANDIDATE_FEATURES)].to_numpy()
    assert x[0, CANDIDATE_FEATURES.index("typical_gap")] == 15.0
    # 10 days past gap_free_days: the odds are multiplied by exp(10 * gap_offset).
    p0, p1 = _score(x, off)[0], _score(x, MowingParams())[0]
    odds = p1 / (1 - p1) / (p0 / (1 - p0))
    assert odds == pytest.approx(np.exp(10 * MowingParams().gap_offset))


def test_thin_table_drops_a_share_of_the_rows_and_keeps_the_table_readable(make_grass) -> None:
    table = normalize_timeseries(pd.concat(make_grass(f"p{k}", seed=k) for k in range(20)))
    thin = thin_table(table, 0.5, seed=1, suffix="#t")
    assert 0.4 < len(thin) / len(table) < 0.6
    assert set(thin["parcel_id"]) == {f"p{k}#t" for k in range(20)}
    assert thin.attrs["normalized"] and thin.equals(thin.sort_values(["parcel_id", "date"]))
    assert thin_table(table, 0.5, seed=1).equals(thin_table(table, 0.5, seed=1))
