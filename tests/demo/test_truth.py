"""The hidden ground truth: scenarios, events and the expected verdict of each control."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from s3tr.demo import DemoPaths
from s3tr.demo.crops import CODES
from s3tr.demo.farming import FALLOW_PROTECTED, SCENARIOS, expected_controls, plan_parcels, truth_parcels

CONTROLS = {"min_activity", "crop_group", "grassland_not_ploughed", "fallow"}


@pytest.fixture(scope="module")
def plans_2000():
    rng = np.random.default_rng(5)
    n = 2000
    plans = plan_parcels(
        rng, labels=np.arange(1, n + 1), farms=rng.integers(0, 100, n), livestock=rng.random(100) < 0.3,
        tiny=np.zeros(n, bool), year=2025,
    )  # fmt: skip
    ids = [f"86{i:06d}" for i in range(1, n + 1)]
    return plans, ids


def test_truth_files(season: DemoPaths) -> None:
    parcels = pd.read_csv(season.truth_dir / "parcels.csv", dtype={"id_parcel": str})
    assert list(parcels.columns) == [
        "id_parcel", "declared_code", "declared_group", "true_code", "true_group",
        "compliant", "scenario", "ploughed_date",
    ]  # fmt: skip
    gpkg = gpd.read_file(season.parcels)
    merged = gpkg.merge(parcels, on="id_parcel", validate="1:1")
    assert len(merged) == len(gpkg) == len(parcels)
    assert (merged["code_cultu"] == merged["declared_code"]).all()
    assert set(parcels["scenario"]) <= set(SCENARIOS)
    events = pd.read_csv(season.truth_dir / "events.csv", dtype={"id_parcel": str})
    assert set(events["event"]) <= {"mowing", "grazing_start", "ploughing", "harvest", "sowing"}
    assert set(events["id_parcel"]) <= set(parcels["id_parcel"])
    assert events["date"].between("2025-04-25", "2025-07-25").all()
    ploughed = parcels[parcels["scenario"] == "grassland_ploughed"]
    assert (ploughed["ploughed_date"].str.len() == 10).all()


def test_non_compliance_share_and_variety(plans_2000) -> None:
    plans, ids = plans_2000
    truth = truth_parcels(plans, ids, 2025)
    share = 1 - truth["compliant"].mean()
    assert 0.05 <= share <= 0.08
    assert set(truth["scenario"]) == set(SCENARIOS)
    assert (truth.loc[truth["scenario"] == "ok", "compliant"] == 1).all()
    assert (truth.loc[truth["scenario"] != "ok", "compliant"] == 0).all()


def test_expected_controls_follow_the_rules(plans_2000) -> None:
    plans, ids = plans_2000
    exp = expected_controls(plans, ids, 2025)
    assert set(exp["control"]) == CONTROLS
    by = {(r.id_parcel, r.control): r.expected for r in exp.itertuples()}
    lo, hi = (
        pd.Timestamp(2025, *FALLOW_PROTECTED[0]).dayofyear,
        pd.Timestamp(2025, *FALLOW_PROTECTED[1]).dayofyear,
    )
    for p, pid in zip(plans, ids, strict=True):
        group = CODES[p.declared_code].group
        assert by[(pid, "crop_group")] == ("green" if CODES[p.true_code].group == group else "red")
        assert ((pid, "min_activity") in by) == (group in (18, 19))
        assert ((pid, "grassland_not_ploughed") in by) == (group == 18)
        assert ((pid, "fallow") in by) == (group == 11)
        if p.scenario == "no_activity":
            assert by[(pid, "min_activity")] == "red" and not p.mowings and not p.grazings
        if p.scenario == "grassland_ploughed":
            assert by[(pid, "grassland_not_ploughed")] == "red"
        if p.scenario == "wrong_crop":
            assert by[(pid, "crop_group")] == "red"
        if p.scenario == "fallow_mowed":
            assert by[(pid, "fallow")] == "red" and any(lo <= d <= hi for d, _, _ in p.mowings)
        if p.scenario == "ok" and group in (18, 19):
            assert by[(pid, "min_activity")] == "green"
            assert 1 <= len(p.mowings) <= 4 or p.grazings


def test_grassland_mowing_calendar(plans_2000) -> None:
    plans, _ = plans_2000
    grass = [p for p in plans if p.scenario == "ok" and CODES[p.declared_code].group in (18, 19)]
    counts = pd.Series([len(p.mowings) for p in grass]).value_counts()
    assert set(counts.index) <= {0, 1, 2, 3, 4} and counts.get(0, 0) < 0.4 * len(grass)
    for p in grass:
        days = [d for d, _, _ in p.mowings]
        assert all(b - a >= 28 for a, b in itertools.pairwise(days))
        assert all(14 <= rec <= 28 for _, _, rec in p.mowings)
