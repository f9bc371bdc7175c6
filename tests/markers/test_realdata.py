"""Marker quality on real ground truth, with floors that fail when quality regresses.

Floors sit slightly below the figures measured when they were set (see ``benchmarks/quality.py``); subsets and
small folds keep the file to about 30 s.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from s3tr.markers.crop import make_classifier
from s3tr.markers.datasets import load_gmi_mowing, load_slovak_mowing, load_ucr_crop
from s3tr.markers.evaluate import evaluate_mowing
from s3tr.markers.mowing import SCORER_NDVI_FALL_ONLY, MowingParams, mowing_marker
from s3tr.markers.tuning import (
    choose_gap_offset,
    cross_validate_crop,
    cross_validate_mowing,
    fit_mowing_params,
    restrict_columns,
    thin_table,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slovak(realdata):
    ds = load_slovak_mowing(realdata / "grassland_mowing")
    pids = ds.table["parcel_id"].unique().tolist()
    return ds, pids, ds.truth[ds.truth["parcel_id"].isin(set(pids))]


def test_loader_hides_the_ground_truth_columns(slovak):
    ds, pids, truth = slovak
    assert not any(c.lower().startswith(("mow", "nmow", "grazing", "ngraz")) for c in ds.table.columns)
    assert len(pids) == 399 and ds.sites.nunique() == 44 and len(truth) == 399


def test_mowing_beats_the_baseline_on_the_slovak_set(slovak):
    ds, pids, truth = slovak
    base = evaluate_mowing(
        mowing_marker(ds.table, params=MowingParams(method="baseline")).events, truth, pids
    )
    ours = evaluate_mowing(mowing_marker(ds.table).events, truth, pids)
    # The baseline re-implementation lands where DESIGN.md says (about 0.64).
    assert 0.60 <= base["f1"] <= 0.70
    # Shipped parameters were fitted on these sites: in-sample, so the floor is high.
    assert ours["f1"] >= 0.80 and ours["season_balanced_accuracy"] >= 0.80
    assert ours["f1"] >= base["f1"] + 0.12


def test_a_cloudier_sky_costs_less_with_the_sparse_series_offset(slovak):
    ds, pids, truth = slovak
    # Half the rows dropped: a clear date every 10 days or so instead of 5.
    sparse = thin_table(ds.table, 0.5, seed=7)
    runs = {
        name: evaluate_mowing(mowing_marker(sparse, params=params).events, truth, pids)
        for name, params in (
            ("shipped", MowingParams()),
            ("no offset", MowingParams(gap_offset=0.0)),
            ("baseline", MowingParams(method="baseline")),
        )
    }
    shipped, without, base = runs["shipped"], runs["no offset"], runs["baseline"]
    # Measured: F1 / balanced accuracy 0.732 / 0.769, against 0.716 / 0.732 without the offset; the
    # baseline 0.678 / 0.690. With 65 % dropped, 0.653 against 0.613 (baseline 0.642).
    assert shipped["f1"] >= without["f1"] + 0.01, runs
    assert shipped["season_balanced_accuracy"] >= without["season_balanced_accuracy"] + 0.02, runs
    assert shipped["f1"] >= base["f1"] + 0.03, runs
    # The offset is what thinned copies of the sites choose (the scorers and threshold left as shipped).
    chosen = choose_gap_offset(ds.table, truth, MowingParams(gap_offset=0.0), offsets=(0.0, 0.1))
    assert chosen.gap_offset == 0.1


def test_mowing_on_survey_plots_it_was_never_fitted_on(realdata, caplog):
    caplog.set_level(logging.ERROR)
    ds = load_gmi_mowing(realdata / "grassland_mowing")
    pids = ds.table["parcel_id"].unique().tolist()
    # The survey attributes (land use, mowing frequency, grazing) would give the answer away.
    assert set(ds.table.columns) <= {
        "parcel_id",
        "date",
        "valid",
        "ndvi",
        "evi",
        *(f"B{b:02d}" for b in range(13)),
    }
    assert len(pids) == 238 and set(ds.sites) == {"LR", "NB", "NS"}
    base = evaluate_mowing(
        mowing_marker(ds.table, params=MowingParams(method="baseline")).events, ds.truth, pids
    )
    ours = evaluate_mowing(mowing_marker(ds.table).events, ds.truth, pids)
    # Out of sample (fitted on the camera sites only): measured F1 0.834 against the baseline's 0.740.
    assert ours["f1"] >= 0.82, ours
    assert ours["precision"] >= ours["recall"] - 0.05 and ours["f1"] >= base["f1"] + 0.08

    # NDVI alone (another country's data may carry no band): the context of each fall is what keeps the
    # scorer ahead of the baseline there. Measured F1 0.767 against 0.753 for the fall alone, 0.740 baseline.
    ndvi = restrict_columns(ds.table, "ndvi")
    alone = evaluate_mowing(mowing_marker(ndvi).events, ds.truth, pids)
    fall_only = evaluate_mowing(
        mowing_marker(ndvi, params=MowingParams(scorer_ndvi=SCORER_NDVI_FALL_ONLY)).events, ds.truth, pids
    )
    assert alone["f1"] >= 0.745 and alone["f1"] > max(fall_only["f1"], base["f1"]), (alone, fall_only, base)


def test_mowing_cross_validated_by_site(slovak, caplog):
    ds, _, truth = slovak
    caplog.set_level(logging.ERROR)
    r = cross_validate_mowing(
        ds.table, truth, ds.sites, n_splits=3, thresholds=(0.4, 0.5, 0.6), separations=(28,)
    )
    # The pipeline's table has indices only (NDVI, NDMI, BSI), no bands.
    ri = cross_validate_mowing(
        ds.table, truth, ds.sites, n_splits=3, thresholds=(0.4, 0.5, 0.6), separations=(28,), data="indices"
    )
    assert ri["f1"] >= INDICES_FLOOR, ri
    rn = cross_validate_mowing(
        ds.table, truth, ds.sites, n_splits=3, thresholds=(0.4, 0.5, 0.6), separations=(28,), data="ndvi"
    )
    # NDVI alone: measured F1 0.759 (0.695 before the context features and the span penalty).
    assert rn["f1"] >= 0.73, rn
    # Held-out sites only: measured F1 0.807, balanced accuracy 0.824 with this coarse grid.
    assert r["f1"] >= 0.77, r
    assert r["season_balanced_accuracy"] >= 0.79, r


def test_span_penalty_is_chosen_with_the_thresholds(slovak, caplog):
    ds, _, truth = slovak
    caplog.set_level(logging.ERROR)
    grid = {"thresholds": (0.4, 0.5), "separations": (28,), "objective": "f1+season"}

    def total(r: dict) -> float:
        return r["f1"] + r["season_balanced_accuracy"]

    params, best = fit_mowing_params(ds.table, truth, span_penalties=(0.0, 0.009), **grid)
    alone = {p: fit_mowing_params(ds.table, truth, span_penalties=(p,), **grid)[1] for p in (0.0, 0.009)}
    assert total(best) == max(total(r) for r in alone.values())
    # Measured in sample: F1 + balanced accuracy 1.69 with the penalty, 1.63 without.
    assert params.span_penalty == 0.009 and total(alone[0.009]) >= total(alone[0.0]) + 0.03, alone


def test_crop_cross_validated_on_ucr_subset(realdata):
    table, labels = load_ucr_crop(realdata / "ucr_crop")
    keep = labels.groupby("label", group_keys=False).head(60)
    table = table[table["parcel_id"].isin(set(keep["parcel_id"]))]
    r = cross_validate_crop(
        table, keep, n_splits=3, make_estimator=lambda s: make_classifier(seed=s, n_estimators=150)
    )
    assert isinstance(r["predictions"], pd.DataFrame) and len(r["predictions"]) == len(keep)
    assert r["accuracy"] >= FLOOR_ACC, r
    assert r["ece_15_bins"] <= CEIL_ECE, r


FLOOR_ACC = 0.645  # measured 0.679 (1,440 series, 3 folds, 150 trees)
CEIL_ECE = 0.06  # measured 0.039


def test_activity_on_the_slovak_set(slovak):
    from s3tr.markers.activity import detect_activity

    ds, _, truth = slovak
    a = detect_activity(ds.table)
    mowed = a["parcel_id"].isin(set(truth["parcel_id"]))
    grazed = a["parcel_id"].isin(set(ds.grazing["parcel_id"]))
    idle = ~mowed & ~grazed
    assert idle.sum() == 22
    # Measured: 0.868 of mowed plot-years active; 19 of the 22 neither mowed nor grazed inactive (17 before
    # the bare-soil marker's loss-of-cover rule: two dormant swards after the snow were taken for tillage).
    assert a.loc[mowed, "activity"].mean() >= 0.82
    assert 1 - a.loc[idle, "activity"].mean() >= 0.8
    # Too little data is never a crash or a guess (the two plot-years with a 61-day cloudy gap now each show
    # a mowing, which stands in a sparse series; tests/markers/test_activity_bare_soil.py has a thin one).
    assert a["status"].isin({"ok", "not_enough_data"}).all() and (a["status"] == "ok").mean() >= 0.98
    assert not a.loc[a["status"] == "not_enough_data", "activity"].any()
    assert set(a.loc[a["activity"], "evidence"]) <= {"mowing", "bare_soil", "grazing"}


def test_unploughed_meadows_never_look_ploughed(realdata, slovak):
    """Nobody ploughed the Slovak camera and survey meadows: each ploughing-level bare soil is a wrong red."""
    from s3tr.markers.bare_soil import BareSoilParams, detect_bare_soil
    from s3tr.markers.datasets import load_gmi_mowing

    ds = slovak[0]
    camera = detect_bare_soil(ds.table)
    red = camera[camera["confidence"] >= 0.8]
    # Measured: none of 399 plot-years. 9 before markers-0.4.0: 4 February-April runs of dormant swards
    # after the snow (the loss-of-cover rule) and 5 July-August runs of swards scorched after a cut in the
    # 2022 and 2024 droughts (the dry-vegetation test: their median NDTI is 0.113-0.166).
    assert red.empty, red
    without_ndti = detect_bare_soil(ds.table, params=BareSoilParams(max_ndti=None))
    scorched = without_ndti[without_ndti["confidence"] >= 0.8]
    assert scorched["parcel_id"].nunique() == 5 and (scorched["start"].dt.month == 7).all()
    survey = detect_bare_soil(load_gmi_mowing(realdata / "grassland_mowing").table)
    assert not (survey["confidence"] >= 0.8).any()  # measured 0 of 238 (1 before)


def test_the_rule_set_on_real_meadows(slovak):
    """Markers and rule set together on the Slovak camera meadows declared as permanent grassland (PPH)."""
    from s3tr.decide import decide, load_ruleset
    from s3tr.markers import compute_evidence

    ds, pids, truth = slovak
    rs = load_ruleset(2025)
    # Each plot-year's dates moved to the rule set's campaign (its windows are dated).
    d = pd.to_datetime(ds.table["date"])
    keep = ~((d.dt.month == 2) & (d.dt.day == 29))
    table = ds.table[keep].assign(
        date=pd.to_datetime({"year": rs.campaign, "month": d.dt.month, "day": d.dt.day})
    )
    parcels = pd.DataFrame(
        {"id_parcel": pids, "code_cultu": "PPH", "code_group": 18, "surf_parc": 1.0, "pacage": "-"}
        | {"campaign": rs.campaign, "department": "-", "n_pixels": 50, "monitorable": True}
    )
    window = (rs.activity_window.start.isoformat(), rs.activity_window.end.isoformat())
    flags = decide(parcels, compute_evidence(table, parcels, season=window), rs).set_index("id_parcel")
    activity = flags[flags["control"] == "min_activity"]["flag"]
    ploughed = flags[flags["control"] == "grassland_not_ploughed"]["flag"]
    # Nobody ploughed them (5 wrong reds before markers-0.5.0) and a red for activity needs a proof of
    # absence that optical series cannot give.
    assert (ploughed != "red").all() and (activity != "red").all()
    mown = sorted(set(truth["parcel_id"]))
    idle = sorted(set(pids) - set(mown) - set(ds.grazing["parcel_id"]))
    # Measured (fr-2025.6): 289 of 356 mown plot-years green; 3 of the 22 neither mown nor grazed green.
    assert (activity[mown] == "green").mean() >= 0.78
    assert (activity[idle] == "green").sum() <= 4
    assert (ploughed[mown] == "green").mean() >= 0.83  # measured 307 of 356


INDICES_FLOOR = 0.77  # measured 0.799 (3 folds, coarse grid)
