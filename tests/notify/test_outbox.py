"""The outbox: each event writes its notification in the transaction of the change, or not at all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select, text

from s3tr.notify.outbox import Kind, enqueue
from s3tr.review.cases import CaseConflictError, sync_decisions, transition_case
from s3tr.review.database import session_scope
from s3tr.review.declarations import record_correction
from s3tr.review.models import Declaration, Notification, PhotoRequest
from s3tr.review.requests import record_photo


def _notes(engine: Any, kind: str | None = None) -> list[Notification]:
    with session_scope(engine) as s:
        stmt = select(Notification).order_by(Notification.id)
        if kind:
            stmt = stmt.where(Notification.kind == kind)
        return list(s.scalars(stmt))


def test_photo_request_writes_its_notification(engine: Any, nt: Any) -> None:
    case_id = nt.add_case(engine)
    request_id = nt.request_for(engine, case_id)
    (note,) = _notes(engine)
    assert (note.kind, note.audience, note.pacage, note.status) == (
        "photo_requested",
        "farmer",
        "086000001",
        "new",
    )
    assert (note.case_id, note.request_id, note.id_parcel, note.campaign) == (
        case_id,
        request_id,
        "086-000001",
        2025,
    )
    assert note.payload["deadline"] == "2025-06-16"
    assert note.payload["control"] == "min_activity"
    assert "vue générale" in note.payload["instructions"]


def test_a_failed_change_leaves_no_notification(engine: Any, nt: Any) -> None:
    case_id = nt.add_case(engine)
    nt.request_for(engine, case_id)
    # a stale version: the change is refused, and so is its notification
    from s3tr.review.requests import request_photos

    with pytest.raises(CaseConflictError):
        request_photos(engine, case_id, actor="x", instructions="again", expected_version=1, now=nt.NOW)
    assert nt.count(engine, "notifications") == 1
    assert nt.count(engine, "photo_requests") == 1


def test_rolled_back_transaction_drops_the_notification(engine: Any, nt: Any) -> None:
    case_id = nt.add_case(engine)
    with pytest.raises(RuntimeError, match="boom"), session_scope(engine, write=True) as s:
        enqueue(s, Kind.CASE_DECIDED, pacage="086000001", case_id=case_id, now=nt.NOW)
        s.flush()
        assert s.scalar(select(Notification.id)) is not None  # it was written...
        raise RuntimeError("boom")
    assert nt.count(engine, "notifications") == 0  # ...and rolled back with the rest


def test_outbox_failure_rolls_the_change_back(engine: Any, nt: Any) -> None:
    """Change and notification are one transaction both ways: if the outbox insert fails, the
    photo request is not created either (nothing committed without its notification)."""
    case_id = nt.add_case(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION outbox_down() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'outbox down'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER outbox_down BEFORE INSERT ON notifications "
                    "FOR EACH ROW EXECUTE FUNCTION outbox_down()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER outbox_down BEFORE INSERT ON notifications "
                    "BEGIN SELECT RAISE(ABORT, 'outbox down'); END"
                )
            )
    try:
        with pytest.raises(Exception, match="outbox down"):
            nt.request_for(engine, case_id)
        assert nt.count(engine, "photo_requests") == 0
        assert nt.count(engine, "cases", "state = 'open'") == 1
    finally:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "DROP TRIGGER outbox_down"
                    + (" ON notifications" if conn.dialect.name == "postgresql" else "")
                )
            )
            if conn.dialect.name == "postgresql":
                conn.execute(text("DROP FUNCTION outbox_down()"))
    nt.request_for(engine, case_id)  # with the outbox back, both are written
    assert nt.count(engine, "photo_requests") == 1 and nt.count(engine, "notifications") == 1


def test_photo_checked_and_case_decided(engine: Any, nt: Any) -> None:
    case_id = nt.add_case(engine)
    request_id = nt.request_for(engine, case_id)
    checks = {
        "accepted": False,
        "results": [{"name": "position", "passed": False}, {"name": "time", "passed": True}],
    }
    record_photo(
        engine,
        request_id,
        sha256="a" * 64,
        storage_path="p/a.jpg",
        actor="farmer_a",
        checks=checks,
        now=nt.NOW,
    )
    (checked,) = _notes(engine, "photo_checked")
    assert checked.payload["accepted"] is False and checked.payload["failed_checks"] == ["position"]
    assert checked.request_id == request_id
    transition_case(
        engine, case_id, "decided", actor="instr_86", outcome="green", note="prairie fauchée", now=nt.NOW
    )
    (decided,) = _notes(engine, "case_decided")
    assert decided.payload == {"control": "min_activity", "outcome": "green", "note": "prairie fauchée"}
    assert decided.pacage == "086000001"


def test_correction_accepted(engine: Any, nt: Any) -> None:
    with session_scope(engine, write=True) as s:
        s.add(
            Declaration(
                campaign=2025,
                id_parcel="086-000009",
                version=1,
                code_cultu="PPH",
                code_group=18,
                surf_parc=3.0,
                pacage="086000001",
                department="86",
                source="declaration",
                created_at=nt.NOW,
            )
        )
    record_correction(
        engine,
        campaign=2025,
        id_parcel="086-000009",
        changes={"code_cultu": "BTH", "code_group": 1},
        submitted_by="farmer_a",
        now=nt.NOW,
    )
    (note,) = _notes(engine, "correction_accepted")
    assert note.pacage == "086000001" and note.payload["code_cultu"] == "BTH" and note.payload["version"] == 2
    assert note.payload["within_window"] is True  # 2 June is inside the 2025 correction window


def _decisions(flag: str, reasons: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id_parcel": ["086-000001", "086-000002"],
            "campaign": 2025,
            "control": "min_activity",
            "flag": [flag, "green"],
            "reasons": [reasons, []],
            "evidence": [{"n_valid": 20}, {"n_valid": 21}],
            "ruleset_version": "fr-2025.2",
            "department": "86",
            "pacage": ["086000001", None],
        }
    )


def test_flag_changes_of_the_nightly_sync(engine: Any, nt: Any) -> None:
    sync_decisions(engine, _decisions("green", []), run_id="n1", now=nt.NOW)
    assert _notes(engine) == []  # first verdicts are not changes
    sync_decisions(engine, _decisions("green", []), run_id="n2", now=nt.NOW + timedelta(days=1))
    assert _notes(engine) == []  # nothing changed
    sync_decisions(engine, _decisions("red", ["no_activity"]), run_id="n3", now=nt.NOW + timedelta(days=2))
    (note,) = _notes(engine, "flag_changed")
    assert (note.id_parcel, note.pacage) == ("086-000001", "086000001")
    assert note.payload["flag"] == "red" and note.payload["previous_flag"] == "green"
    # a parcel without PACAGE has nobody to tell: no row
    assert nt.count(engine, "notifications") == 1


def test_committed_requests_always_notify_under_concurrency(engine: Any, nt: Any) -> None:
    """Concurrent instructors: exactly the committed photo requests have a notification."""
    from concurrent.futures import ThreadPoolExecutor

    from s3tr.review.requests import request_photos

    cases = [nt.add_case(engine, id_parcel=f"086-{i:06d}") for i in range(6)]

    def attempt(case_id: int) -> bool:
        try:
            request_photos(engine, case_id, actor="i", instructions="x", expected_version=1, now=nt.NOW)
            return True
        except CaseConflictError:
            return False

    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(attempt, cases + cases))  # each case twice: one of the two loses
    assert sum(won) == len(cases)
    with session_scope(engine) as s:
        requested = set(s.scalars(select(PhotoRequest.case_id)))
    notified = {n.case_id for n in _notes(engine, "photo_requested")}
    assert notified == requested == set(cases)
    assert nt.count(engine, "notifications") == len(cases)
