"""Declarations are versioned, never overwritten; corrections retire controls that no longer apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import select, text

from s3tr.decide import decide, load_ruleset
from s3tr.review import database, list_cases, sync_decisions
from s3tr.review.cases import count_rows
from s3tr.review.declarations import (
    DeclarationNotFoundError,
    current_declarations,
    record_correction,
    sync_declarations,
)
from s3tr.review.models import Correction, Decision, Declaration

NOW = datetime(2025, 6, 20, 2, 0, tzinfo=UTC)


def test_versions_are_added_only_on_change(engine, factories) -> None:  # type: ignore[no-untyped-def]
    parcels = factories.parcels(30)
    first = sync_declarations(engine, parcels, run_id="n1", now=NOW)
    assert (first.new, first.changed, first.unchanged) == (30, 0, 0)
    again = sync_declarations(engine, parcels, run_id="n2", now=NOW)
    assert (again.new, again.changed, again.unchanged) == (0, 0, 30)
    assert count_rows(engine, "declarations") == 30

    parcels.loc[3, "surf_parc"] = parcels.loc[3, "surf_parc"] + 1.0
    third = sync_declarations(engine, parcels, run_id="n3", now=NOW)
    assert (third.new, third.changed, third.unchanged) == (0, 1, 29)
    current = current_declarations(engine, 2025).set_index("id_parcel")
    assert current.loc[parcels.loc[3, "id_parcel"], "version"] == 2
    assert current.loc[parcels.loc[3, "id_parcel"], "surf_parc"] == pytest.approx(parcels.loc[3, "surf_parc"])
    with engine.connect() as conn:
        versions = conn.execute(
            select(Declaration.version, Declaration.surf_parc).where(
                Declaration.id_parcel == parcels.loc[3, "id_parcel"]
            )
        ).all()
    assert sorted(v for v, _ in versions) == [1, 2]  # the first version is kept as it was


def test_commune_is_stored_and_updated_in_place(engine, factories) -> None:  # type: ignore[no-untyped-def]
    parcels = factories.parcels(4)
    parcels["commune"] = ["86194", "86066", "not-a-code", "2A004"]
    sync_declarations(engine, parcels, run_id="n1", now=NOW)

    def communes() -> dict[str, str | None]:
        current = current_declarations(engine, 2025)
        pairs = zip(current["id_parcel"], current["commune"], strict=True)
        return {p: None if pd.isna(c) else c for p, c in pairs}

    pids = list(parcels["id_parcel"])
    assert communes() == dict(zip(pids, ["86194", "86066", None, "2A004"], strict=True))
    # A commune alone changing is no new declaration: updated in place.
    parcels.loc[1, "commune"], parcels.loc[2, "commune"] = "86194", "86066"
    moved = sync_declarations(engine, parcels, run_id="n2", now=NOW)
    assert (moved.new, moved.changed, moved.unchanged) == (0, 0, 4)
    assert count_rows(engine, "declarations") == 4
    assert communes() == dict(zip(pids, ["86194", "86194", "86066", "2A004"], strict=True))
    # A file without the column says nothing about communes: they are kept, on new versions too.
    silent = parcels.drop(columns=["commune"])
    silent.loc[0, "surf_parc"] = silent.loc[0, "surf_parc"] + 1.0
    assert sync_declarations(engine, silent, run_id="n3", now=NOW).changed == 1
    assert communes() == dict(zip(pids, ["86194", "86194", "86066", "2A004"], strict=True))
    # A parcel that moves later moves on every version (the queue filter reads any of them).
    parcels.loc[0, "commune"] = "86066"
    sync_declarations(engine, parcels.assign(surf_parc=silent["surf_parc"]), run_id="n4", now=NOW)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Declaration.version, Declaration.commune).where(Declaration.id_parcel == pids[0])
        ).all()
    assert sorted(rows) == [(1, "86066"), (2, "86066")]
    # So does a farmer's correction.
    record_correction(engine, campaign=2025, id_parcel=pids[3], changes={"surf_parc": 1.5}, submitted_by="t")
    current = current_declarations(engine, 2025).set_index("id_parcel")
    assert current.loc[pids[3], "version"] == 2 and current.loc[pids[3], "commune"] == "2A004"


def test_correction_pph_to_bth_cancels_grassland_cases(engine, factories) -> None:  # type: ignore[no-untyped-def]
    parcels = factories.parcels(1)
    parcels["code_cultu"], parcels["code_group"] = "PPH", 18
    evidence = factories.evidence(parcels)
    evidence["n_valid"], evidence["activity"], evidence["mowing_dates"] = 3, False, ""  # thin: all orange
    sync_declarations(engine, parcels, run_id="n1", now=NOW)
    rs = load_ruleset(2025)
    sync_decisions(engine, decide(parcels, evidence, rs), run_id="n1", now=NOW)
    assert set(list_cases(engine)["control"]) == {"min_activity", "grassland_not_ploughed"}

    pid = parcels.loc[0, "id_parcel"]
    result = record_correction(
        engine,
        campaign=2025,
        id_parcel=pid,
        changes={"code_cultu": "BTH", "code_group": 1},
        submitted_by="086000001",
        reason="erreur de saisie",
        now=datetime(2025, 6, 21, tzinfo=UTC),
    )
    assert (result.version, result.within_window, result.cases_cancelled) == (2, True, 2)
    assert result.retired_controls == ("grassland_not_ploughed", "min_activity")
    assert set(list_cases(engine)["state"]) == {"cancelled"}
    with engine.connect() as conn:
        current = conn.execute(select(Decision.control).where(Decision.is_current.is_(True))).scalars().all()
        corr = conn.execute(select(Correction.within_window)).scalars().all()
    assert current == []
    assert corr == [True]

    # re-scoring the corrected declaration adds its new control
    corrected = parcels.assign(code_cultu="BTH", code_group=1)
    summary = sync_decisions(engine, decide(corrected, evidence, rs), run_id="n2", now=NOW)
    assert summary.decisions_new == 1
    assert set(list_cases(engine, state="open")["control"]) <= {"crop_group"}


def test_correction_outside_the_window_is_recorded_as_such(engine, factories) -> None:  # type: ignore[no-untyped-def]
    parcels = factories.parcels(1)
    sync_declarations(engine, parcels, run_id="n1", now=NOW)
    late = record_correction(
        engine,
        campaign=2025,
        id_parcel=parcels.loc[0, "id_parcel"],
        changes={"surf_parc": 1.0},
        submitted_by="x",
        now=datetime(2025, 11, 2, tzinfo=UTC),
    )
    assert not late.within_window and late.retired_controls == ()
    with pytest.raises(DeclarationNotFoundError, match="load the parcels"):
        record_correction(
            engine, campaign=2025, id_parcel="nope", changes={"surf_parc": 1.0}, submitted_by="x"
        )
    with pytest.raises(ValueError, match="cannot correct"):
        record_correction(engine, campaign=2025, id_parcel="nope", changes={"geometry": 1}, submitted_by="x")


def _has_statistics(engine, table: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the query planner has statistics of ``table`` (what ANALYZE writes)."""
    with engine.connect() as conn:
        if database.is_sqlite(conn):
            if not conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
                return False
            sql = "SELECT count(*) FROM sqlite_stat1 WHERE tbl = :t"
        else:
            sql = "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = :t"
        return conn.execute(text(sql), {"t": table}).scalar_one() > 0


def test_a_large_sync_refreshes_the_planner_statistics(engine, factories, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(database, "ANALYZE_AFTER_ROWS", 100)
    parcels, _, decisions = factories.decisions(300)
    sync_declarations(engine, parcels.head(20), run_id="small", now=NOW)
    assert not _has_statistics(engine, "declarations")  # below the threshold: left to autovacuum
    sync_declarations(engine, parcels, run_id="large", now=NOW)
    assert _has_statistics(engine, "declarations")
    assert not _has_statistics(engine, "cases")
    sync_decisions(engine, decisions, run_id="large", now=NOW)
    assert _has_statistics(engine, "cases") and _has_statistics(engine, "decisions")
