"""The parcels the chips are cut for, read in bulk from the queue (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
from shapely.geometry import box
from sqlalchemy import update
from sqlalchemy.orm import Session

from s3tr.decide import load_ruleset
from s3tr.review import list_cases, sync_decisions
from s3tr.review.chips import _active_parcels
from s3tr.review.declarations import sync_declarations
from s3tr.review.models import Case, Decision

NOW = datetime(2025, 6, 20, 2, 0, tzinfo=UTC)


def test_each_parcel_under_review_comes_with_its_latest_geometry_cases_and_events(engine, factories) -> None:  # type: ignore[no-untyped-def]
    parcels, _, decisions = factories.decisions(60)
    frame = gpd.GeoDataFrame(
        parcels, geometry=[box(500_000 + 100 * i, 6_600_000, 500_050 + 100 * i, 6_600_050) for i in range(60)]
    ).set_crs("EPSG:2154")
    sync_declarations(engine, frame, run_id="n1", now=NOW)
    sync_decisions(engine, decisions, run_id="n1", now=NOW)
    cases = list_cases(engine)
    assert len(cases) >= 4
    # a parcel redrawn since (a second declaration version), and a case closed by the instructor
    moved, closed = cases["id_parcel"].iloc[0], cases.iloc[-1]
    # (geometry alone makes no new version: the farmer's redrawing changes the area too)
    frame.loc[frame["id_parcel"] == moved, "geometry"] = box(0, 0, 10, 10)
    frame.loc[frame["id_parcel"] == moved, "surf_parc"] = 0.01
    sync_declarations(engine, frame, run_id="n2", now=NOW)
    mowed = cases.iloc[1]
    with Session(engine) as s, s.begin():
        s.execute(update(Case).where(Case.case_id == int(closed["case_id"])).values(state="decided"))
        decision = s.get(Decision, s.get(Case, int(mowed["case_id"])).decision_id)
        decision.evidence = {**decision.evidence, "mowing_dates": ["2025-06-10", "2025-07-30"]}

    got = {p.id_parcel: p for p in _active_parcels(engine, load_ruleset(2025))}
    active = cases[cases["case_id"] != closed["case_id"]]
    assert set(got) == set(active["id_parcel"])
    for pid, part in active.groupby("id_parcel"):
        parcel = got[pid]
        assert sorted(c["case_id"] for c in parcel.cases) == sorted(part["case_id"])
        assert {c["control"] for c in parcel.cases} == set(part["control"])
        assert parcel.crs == "EPSG:2154"
        expected = box(0, 0, 10, 10) if pid == moved else frame.set_index("id_parcel").geometry[pid]
        assert parcel.geometry.equals(expected), pid
    # the events come from each case's decision evidence
    assert {str(d) for d in got[mowed["id_parcel"]].events} == {"2025-06-10", "2025-07-30"}
    assert all(not p.events for pid, p in got.items() if pid != mowed["id_parcel"])
