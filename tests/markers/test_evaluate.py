from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from s3tr.markers.evaluate import (
    crop_bootstrap_intervals,
    evaluate_crop,
    evaluate_crop_files,
    evaluate_mowing,
    evaluate_mowing_files,
    expected_calibration_error,
    match_events,
)


def _d(*xs):
    return np.array(xs, dtype="datetime64[D]")


def test_matching_is_one_to_one_in_time_order():
    starts, ends = _d("2023-06-01", "2023-06-20"), _d("2023-06-05", "2023-06-25")
    # Two true dates fit the first event's window, one fits both: each event is used once.
    pairs = match_events(starts, ends, _d("2023-06-12", "2023-05-25"))
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert match_events(starts[:1], ends[:1], _d("2023-06-12", "2023-05-25")) == [(1, 0)]


def test_evaluate_mowing_counts_and_season():
    events = pd.DataFrame(
        {
            "parcel_id": ["a", "a", "c"],
            "start": ["2023-06-01", "2023-08-01", "2023-07-01"],
            "end": ["2023-06-06"] * 1 + ["2023-08-06", "2023-07-06"],
        }
    )
    truth = pd.DataFrame({"parcel_id": ["a", "b", "zz"], "date": ["2023-06-10", "2023-07-01", "2023-07-01"]})
    r = evaluate_mowing(events, truth, ["a", "b", "c", "d"])
    assert (r["tp"], r["fp"], r["fn"]) == (1, 2, 1)
    assert r["precision"] == pytest.approx(1 / 3) and r["recall"] == pytest.approx(0.5)
    # a mowed+detected, b mowed+missed, c not mowed+detected, d not mowed+clean
    assert r["season_sensitivity"] == 0.5 and r["season_specificity"] == 0.5
    assert r["n_truth_parcels_unscored"] == 1
    assert evaluate_mowing(events, truth, ["a"], tolerance_days=0)["tp"] == 0


def test_truth_rows_without_a_date_name_the_never_mowed_parcels(tmp_path, caplog):
    events = pd.DataFrame(
        {"parcel_id": ["a", "a", "c"], "start": ["2023-06-01", "2023-08-01", "2023-07-01"]}
    ).assign(end=["2023-06-06", "2023-08-06", "2023-07-06"])
    mowed = pd.DataFrame({"parcel_id": ["a", "b"], "date": ["2023-06-10", "2023-07-01"]})
    listed = pd.concat([mowed, pd.DataFrame({"parcel_id": ["c", "d"], "date": [None, ""]})])
    with_series = evaluate_mowing(events, mowed, ["a", "b", "c", "d"])
    from_truth = evaluate_mowing(events, listed)
    for key in ("tp", "fp", "fn", "n_parcels", "season_sensitivity", "season_specificity"):
        assert from_truth[key] == with_series[key], key
    assert from_truth["season_balanced_accuracy"] == pytest.approx(0.5)
    # through the CSV files, as `s3tr evaluate mowing --events E --truth T` reads them
    events.to_csv(tmp_path / "e.csv", index=False)
    listed.to_csv(tmp_path / "t.csv", index=False)
    files = evaluate_mowing_files(tmp_path / "e.csv", tmp_path / "t.csv")
    assert files["season_specificity"] == 0.5 and files["n_parcels"] == 4
    # Neither the series nor dateless rows: the never-mowed parcels without a detection are unknown.
    alone = evaluate_mowing(events, mowed)
    assert np.isnan(alone["season_specificity"]) and np.isnan(alone["season_balanced_accuracy"])
    assert alone["season_sensitivity"] == 0.5 and alone["f1"] == with_series["f1"]
    assert "--timeseries" in caplog.text


def test_ece_and_crop_scores(tmp_path):
    assert expected_calibration_error(np.array([0.95, 0.95]), np.array([1, 1])) == pytest.approx(0.05)
    pred = pd.DataFrame(
        {
            "parcel_id": ["1", "2", "3", "4"],
            "predicted": ["w", "w", "m", None],
            "probability": [0.95, 0.92, 0.5, None],
        }
    )
    labels = pd.DataFrame({"parcel_id": ["1", "2", "3", "4"], "label": ["w", "m", "m", "m"]})
    r = evaluate_crop(pred, labels)
    assert r["accuracy"] == 0.5 and r["n_unpredicted"] == 1
    assert r["coverage_at_threshold"] == 0.5 and r["precision_at_threshold"] == 0.5
    pred.to_csv(tmp_path / "p.csv", index=False)
    labels.to_csv(tmp_path / "l.csv", index=False)
    r2 = evaluate_crop_files(tmp_path / "p.csv", tmp_path / "l.csv", json_out=tmp_path / "o.json")
    assert json.loads((tmp_path / "o.json").read_text())["accuracy"] == r2["accuracy"] == 0.5


def _crop_run(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    label = rng.choice(["wheat", "maize", "grass", "rape"], n)
    prob = rng.uniform(0.3, 1.0, n)
    right = rng.random(n) < prob
    predicted = np.where(right, label, rng.choice(["wheat", "maize", "grass", "sunflower"], n))
    ids = [f"p{i}" for i in range(n)]
    pred = pd.DataFrame({"parcel_id": ids, "predicted": predicted, "probability": prob})
    pred.loc[:4, ["predicted", "probability"]] = None  # unpredicted parcels count as wrong
    return pred, pd.DataFrame({"parcel_id": ids, "label": label})


def test_crop_bootstrap_intervals_agree_with_the_figures_and_widen_with_groups():
    pred, labels = _crop_run()
    point = evaluate_crop(pred, labels)
    # One group holding every parcel: each resample is the whole set, so the interval is the figure itself.
    one = crop_bootstrap_intervals(
        pred, labels, groups=pd.Series("farm", index=labels["parcel_id"]), n_boot=3
    )
    for name in ("accuracy", "macro_f1", "ece_15_bins", "coverage_at_threshold", "precision_at_threshold"):
        assert one[f"{name}_ci95"] == pytest.approx([point[name]] * 2), name
    alone = crop_bootstrap_intervals(pred, labels, n_boot=400)
    for name in ("accuracy", "macro_f1", "coverage_at_threshold", "precision_at_threshold"):
        lo, hi = alone[f"{name}_ci95"]
        assert lo < point[name] < hi, name
    lo, hi = alone["accuracy_ci95"]
    assert hi - lo == pytest.approx(np.diff(point["accuracy_ci95"])[0], rel=0.25)  # as wide as Wilson's
    # Farms of 10 identical parcels: 40 independent draws, not 400, so an interval about sqrt(10) as wide.
    pred, labels = _crop_run(40, seed=1)
    copies = [df.assign(parcel_id=df["parcel_id"] + f"_{k}") for df in (pred, labels) for k in range(10)]
    pred10, labels10 = pd.concat(copies[:10]), pd.concat(copies[10:])
    farms = pd.Series(labels10["parcel_id"].str.split("_").str[0].to_numpy(), index=labels10["parcel_id"])
    parcels = crop_bootstrap_intervals(pred10, labels10, n_boot=400)
    by_farm = crop_bootstrap_intervals(pred10, labels10, groups=farms, n_boot=400)
    width = {k: np.diff(v)[0] for k, v in parcels.items()}
    assert np.diff(by_farm["accuracy_ci95"])[0] > 2 * width["accuracy_ci95"]
    assert np.diff(by_farm["macro_f1_ci95"])[0] > 2 * width["macro_f1_ci95"]


def test_evaluation_files_with_bad_dates_or_missing_are_named(tmp_path):
    from s3tr.markers.table import MarkerInputError

    events = tmp_path / "events.csv"
    pd.DataFrame({"parcel_id": ["a"], "start": ["2023-06-09"], "end": ["2023-06-14"]}).to_csv(
        events, index=False
    )
    truth = tmp_path / "truth.csv"
    # Times and zones are read as their day.
    truth.write_text("parcel_id,date\na,2023-06-12T00:00:00Z\nb,\n")
    assert evaluate_mowing_files(events, truth)["tp"] == 1
    truth.write_text("parcel_id,date\na,12/06/2023\nb,\n")  # 12 June, day first
    assert evaluate_mowing_files(events, truth)["tp"] == 1
    truth.write_text("parcel_id,date\na,2023-06-12\nb,\nc,mid-June\n")
    with pytest.raises(
        MarkerInputError, match=r"truth\.csv, column date: unreadable date 'mid-June' on data row"
    ):
        evaluate_mowing_files(events, truth)
    with pytest.raises(MarkerInputError, match=r"cannot read the events file .*nope\.csv"):
        evaluate_mowing_files(tmp_path / "nope.csv", truth)
    with pytest.raises(MarkerInputError, match="cannot read the predictions file"):
        evaluate_crop_files(tmp_path / "nope.csv", truth)
