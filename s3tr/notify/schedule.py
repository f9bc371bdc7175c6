"""Scheduled notifications: photo-request reminders and the instructors' daily digest.

Both are idempotent: each notification has a dedupe key (``reminder:<request>:<offset>``,
``digest:<department>:<local date>``) and is inserted with ``ON CONFLICT DO NOTHING``, so running
the worker often (or twice at once) never doubles them. Time is always passed in (``now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from s3tr.notify.outbox import Audience, Kind, _row
from s3tr.review.database import write_connection
from s3tr.review.models import Case, Notification, Photo, PhotoRequest, User, table_of

__all__ = ["due_offset", "in_quiet_hours", "local_day", "schedule_digests", "schedule_reminders"]

_DIGEST_PARCELS = 10  # parcels named in a digest; the rest are counted


def local_day(now: datetime, tz: str) -> date:
    """The calendar day of ``now`` in time zone ``tz``."""
    return now.astimezone(ZoneInfo(tz)).date()


def in_quiet_hours(now: datetime, tz: str, start: int, end: int) -> bool:
    """Whether ``now`` falls in the quiet hours [start, end) local time (may span midnight)."""
    if start == end:
        return False
    hour = now.astimezone(ZoneInfo(tz)).hour
    return (start <= hour < end) if start < end else (hour >= start or hour < end)


def due_offset(days_left: int, offsets: Sequence[int]) -> int | None:
    """The reminder offset whose window contains ``days_left`` (None: no reminder is due).

    With offsets (7, 2) the 7-day reminder is due from 7 to 3 days before the deadline and the
    2-day one from 2 days to the deadline day, so a worker that missed a day still sends the
    reminder of the current window, and never an out-of-date one after a newer one.
    """
    ordered = sorted({int(o) for o in offsets if int(o) >= 0})
    for i, offset in enumerate(ordered):
        lower = ordered[i - 1] if i else -1
        if lower < days_left <= offset:
            return offset
    return None


def _insert_ignore(conn: Connection, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    table = table_of(Notification)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"])
    # RETURNING counts the rows really inserted (rowcount is -1 for a PostgreSQL executemany)
    return len(conn.execute(stmt.returning(table.c.id), rows).all())


def schedule_reminders(engine: Engine, *, offsets_days: Sequence[int], now: datetime, tz: str) -> int:
    """Add the reminders due at ``now`` for pending photo requests; returns how many were new.

    Answered (fulfilled), expired or cancelled requests get none, and so do requests past their
    deadline.
    """
    today = local_day(now, tz)
    horizon = today + timedelta(days=max([0, *offsets_days]))
    rq, ct = table_of(PhotoRequest), table_of(Case)
    with write_connection(engine) as conn:
        pending = conn.execute(
            select(rq.c.id, rq.c.deadline, rq.c.instructions)
            .add_columns(ct.c.case_id, ct.c.pacage, ct.c.department, ct.c.campaign)
            .add_columns(ct.c.id_parcel, ct.c.control)
            .join(ct, ct.c.case_id == rq.c.case_id)
            .where(rq.c.state == "pending", rq.c.deadline.is_not(None))
            .where(rq.c.deadline >= today, rq.c.deadline <= horizon, ct.c.pacage.is_not(None))
        ).all()
        rows = []
        for r in pending:
            days_left = (r.deadline - today).days
            offset = due_offset(days_left, offsets_days)
            if offset is None:
                continue
            rows.append(
                _row(
                    Kind.REMINDER,
                    audience=Audience.FARMER,
                    pacage=r.pacage,
                    department=r.department,
                    user_id=None,
                    campaign=r.campaign,
                    id_parcel=r.id_parcel,
                    case_id=r.case_id,
                    request_id=r.id,
                    payload={
                        "control": r.control,
                        "deadline": r.deadline,
                        "days_left": days_left,
                        "offset_days": offset,
                        "instructions": r.instructions,
                    },
                    dedupe_key=f"reminder:{r.id}:{offset}",
                    now=now,
                )
            )
        return _insert_ignore(conn, rows)


def schedule_digests(engine: Engine, *, now: datetime, tz: str) -> int:
    """Add today's digest for every department that has instructors and news; returns how many.

    Covers the 24 hours before ``now``: new orange cases, photos received, photo requests whose
    deadline passed without an answer.
    """
    today = local_day(now, tz)
    since = now - timedelta(hours=24)
    ut, ct, pt, rq = table_of(User), table_of(Case), table_of(Photo), table_of(PhotoRequest)
    with write_connection(engine) as conn:
        departments = (
            conn.execute(
                select(ut.c.department)
                .where(ut.c.role == "instructor", ut.c.active.is_(True), ut.c.department.is_not(None))
                .distinct()
            )
            .scalars()
            .all()
        )
        rows = []
        for dept in sorted(departments):
            new_cases = (
                conn.execute(
                    select(ct.c.id_parcel)
                    .where(ct.c.department == dept, ct.c.flag == "orange")
                    .where(ct.c.created_at >= since, ct.c.created_at < now)
                    .order_by(ct.c.priority.desc(), ct.c.id_parcel)
                )
                .scalars()
                .all()
            )
            photos = conn.execute(
                select(func.count())
                .select_from(pt.join(ct, ct.c.case_id == pt.c.case_id))
                .where(ct.c.department == dept, pt.c.received_at >= since, pt.c.received_at < now)
            ).scalar_one()
            passed = conn.execute(
                select(func.count())
                .select_from(rq.join(ct, ct.c.case_id == rq.c.case_id))
                .where(ct.c.department == dept, rq.c.state == "pending")
                .where(rq.c.deadline < today, rq.c.deadline >= today - timedelta(days=1))
            ).scalar_one()
            if not (new_cases or photos or passed):
                continue
            rows.append(
                _row(
                    Kind.DIGEST,
                    audience=Audience.INSTRUCTOR,
                    pacage=None,
                    department=dept,
                    user_id=None,
                    campaign=None,
                    id_parcel=None,
                    case_id=None,
                    request_id=None,
                    payload={
                        "department": dept,
                        "day": today,
                        "new_orange": len(new_cases),
                        "photos_received": int(photos),
                        "deadlines_passed": int(passed),
                        "parcels": list(new_cases[:_DIGEST_PARCELS]),
                        "more": max(0, len(new_cases) - _DIGEST_PARCELS),
                    },
                    dedupe_key=f"digest:{dept}:{today.isoformat()}",
                    now=now,
                )
            )
        return _insert_ignore(conn, rows)
