"""The transactional outbox: a notification row written in the transaction of the change it reports.

Domain functions call :func:`enqueue` with *their* session or connection, before committing:
if the change rolls back, so does the notification; once it commits, the notification exists and
the delivery worker (:mod:`s3tr.notify.worker`) will send it. Nothing here talks to the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

__all__ = ["FARMER_KINDS", "Audience", "Kind", "enqueue", "enqueue_many"]


class Kind(StrEnum):
    """What happened (one message template per kind and language)."""

    PHOTO_REQUESTED = "photo_requested"
    REMINDER = "reminder"
    PHOTO_CHECKED = "photo_checked"
    CASE_DECIDED = "case_decided"
    FLAG_CHANGED = "flag_changed"
    CORRECTION_ACCEPTED = "correction_accepted"
    DIGEST = "digest"


class Audience(StrEnum):
    """Who a notification is for: the farmers of a PACAGE, the instructors of a department, one user."""

    FARMER = "farmer"
    INSTRUCTOR = "instructor"
    USER = "user"


#: kinds a farmer receives (and may mute in the preferences)
FARMER_KINDS = tuple(k.value for k in Kind if k is not Kind.DIGEST)


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars from the bulk sync
        return value.item()
    return value


def _row(
    kind: Kind | str,
    *,
    audience: Audience | str,
    pacage: str | None,
    department: str | None,
    user_id: int | None,
    campaign: int | None,
    id_parcel: str | None,
    case_id: int | None,
    request_id: int | None,
    payload: Mapping[str, Any] | None,
    dedupe_key: str | None,
    now: datetime | None,
) -> dict[str, Any]:
    kind, audience = Kind(kind), Audience(audience)
    if audience is Audience.FARMER and not pacage:
        raise ValueError(f"a {kind.value} notification for farmers needs the PACAGE number")
    if audience is Audience.INSTRUCTOR and not department:
        raise ValueError(f"a {kind.value} notification for instructors needs the department")
    if audience is Audience.USER and user_id is None:
        raise ValueError(f"a {kind.value} notification for one user needs its user_id")
    return {
        "kind": kind.value,
        "audience": audience.value,
        "user_id": user_id,
        "pacage": pacage,
        "department": department,
        "campaign": None if campaign is None else int(campaign),
        "id_parcel": id_parcel,
        "case_id": None if case_id is None else int(case_id),
        "request_id": None if request_id is None else int(request_id),
        "payload": _json_safe(dict(payload or {})),
        "dedupe_key": dedupe_key,
        "status": "new",
        "created_at": now or datetime.now(UTC),
        "read_at": None,
    }


def enqueue(
    session: Session | Connection,
    kind: Kind | str,
    *,
    audience: Audience | str = Audience.FARMER,
    pacage: str | None = None,
    department: str | None = None,
    user_id: int | None = None,
    campaign: int | None = None,
    id_parcel: str | None = None,
    case_id: int | None = None,
    request_id: int | None = None,
    payload: Mapping[str, Any] | None = None,
    dedupe_key: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add one notification to the outbox inside the caller's open transaction (no commit here).

    Parameters
    ----------
    session
        The ORM session or Core connection of the change being made.
    kind
        What happened (:class:`Kind`).
    audience
        ``farmer`` (needs ``pacage``), ``instructor`` (needs ``department``) or ``user``
        (needs ``user_id``).
    payload
        What the message templates show (deadline, instructions, flags...); JSON-safe values.
    dedupe_key
        A unique key for events that could be raised twice (reminders, digests): a second
        insert with the same key violates a unique constraint.

    Raises
    ------
    ValueError
        When the audience lacks its key.
    """
    enqueue_many(
        session,
        [
            _row(
                kind,
                audience=audience,
                pacage=pacage,
                department=department,
                user_id=user_id,
                campaign=campaign,
                id_parcel=id_parcel,
                case_id=case_id,
                request_id=request_id,
                payload=payload,
                dedupe_key=dedupe_key,
                now=now,
            )
        ],
    )


def enqueue_many(session: Session | Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Add many notifications at once (the nightly sync's flag changes); returns how many.

    Each row has the keyword arguments of :func:`enqueue` plus ``kind``; missing keys are None.
    """
    keys = (
        "audience", "pacage", "department", "user_id", "campaign", "id_parcel",
        "case_id", "request_id", "payload", "dedupe_key", "now",
    )  # fmt: skip
    values = [
        r
        if "status" in r  # already built by _row
        else _row(r["kind"], **{k: r.get(k, "farmer" if k == "audience" else None) for k in keys})
        for r in rows
    ]
    if not values:
        return 0
    # imported here: the review package imports this module while it initialises
    from s3tr.review.models import Notification, table_of

    session.execute(insert(table_of(Notification)), values)
    return len(values)
