"""Photo requests and photos move their case through the state machine atomically."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from s3tr.review import CaseConflictError, CaseTransitionError, get_case, session_scope
from s3tr.review.cases import count_rows
from s3tr.review.models import Case
from s3tr.review.requests import DuplicatePhotoError, PhotoRequestError, record_photo, request_photos

NOW = datetime(2025, 6, 20, tzinfo=UTC)


def _case(engine) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        case = Case(
            campaign=2025,
            id_parcel="086-1",
            control="min_activity",
            state="open",
            flag="orange",
            reasons=["not_enough_observations"],
            priority=100.0,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(case)
        s.flush()
        return case.case_id


def test_request_then_two_photos(engine) -> None:  # type: ignore[no-untyped-def]
    cid = _case(engine)
    req = request_photos(
        engine,
        cid,
        actor="inst",
        instructions="vue générale + gros plan, vers le nord",
        deadline=date(2025, 7, 5),
        target_lon=0.34,
        target_lat=46.58,
        heading_deg=0.0,
        expected_version=1,
    )
    assert req["case"]["state"] == "photo_requested"
    first = record_photo(
        engine,
        req["request_id"],
        sha256="a" * 64,
        storage_path="p/a.jpg",
        actor="086000001",
        view="general",
        lon=0.34,
        lat=46.58,
        checks={"inside_parcel": True},
    )
    assert first["case"]["state"] == "photo_received"
    second = record_photo(
        engine, req["request_id"], sha256="b" * 64, storage_path="p/b.jpg", actor="086000001", view="closeup"
    )
    assert second["case"] is None  # the case moved once
    assert get_case(engine, cid)["version"] == 3
    with pytest.raises(DuplicatePhotoError):
        record_photo(engine, req["request_id"], sha256="a" * 64, storage_path="p/c.jpg", actor="x")
    assert count_rows(engine, "photos") == 2


def test_request_on_stale_or_closed_case_writes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    cid = _case(engine)
    with pytest.raises(CaseConflictError):
        request_photos(engine, cid, actor="inst", instructions="x", expected_version=7)
    assert count_rows(engine, "photo_requests") == 0
    from s3tr.review import transition_case

    transition_case(engine, cid, "cancelled", actor="inst")
    with pytest.raises(CaseTransitionError):
        request_photos(engine, cid, actor="inst", instructions="x")
    assert count_rows(engine, "photo_requests") == 0
    with pytest.raises(PhotoRequestError):
        record_photo(engine, 12345, sha256="c" * 64, storage_path="p", actor="x")
