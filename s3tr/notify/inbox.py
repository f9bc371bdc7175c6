"""What the app shows: a user's notifications (rendered in their language) and read marks.

The in-app list is the fallback when push or e-mail fails, so it shows every notification of
the user, whatever the channel preferences.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from s3tr.notify.templates import render
from s3tr.review.models import Notification, table_of

__all__ = ["list_notifications", "mark_read"]


def _visible_to(user_id: int, pacage: str | None, department: str | None, role: str):  # type: ignore[no-untyped-def]
    nt = table_of(Notification)
    mine = [and_(nt.c.audience == "user", nt.c.user_id == user_id)]
    if role == "farmer" and pacage:
        mine.append(and_(nt.c.audience == "farmer", nt.c.pacage == pacage))
    if role == "instructor" and department:
        mine.append(and_(nt.c.audience == "instructor", nt.c.department == department))
    return or_(*mine)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _out(row: Any, locale: str, app_url: str) -> dict[str, Any]:
    context = {
        "id_parcel": row.id_parcel,
        "campaign": row.campaign,
        "case_id": row.case_id,
        "request_id": row.request_id,
        **(row.payload or {}),
    }
    text = render(row.kind, locale, context, app_url=app_url)
    return {
        "id": row.id,
        "kind": row.kind,
        "created_at": _aware(row.created_at),
        "read_at": _aware(row.read_at),
        "title": text.subject,
        "body": text.body,
        "campaign": row.campaign,
        "id_parcel": row.id_parcel,
        "case_id": row.case_id,
        "request_id": row.request_id,
        "data": row.payload or {},
    }


def list_notifications(
    session: Session,
    *,
    user_id: int,
    role: str,
    pacage: str | None = None,
    department: str | None = None,
    locale: str = "fr",
    app_url: str,
    unread_only: bool = False,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """A user's notifications, newest first, with title and body rendered in ``locale``.

    ``before_id`` pages backwards (pass the last id of the previous page).
    """
    nt = table_of(Notification)
    stmt = select(nt).where(_visible_to(user_id, pacage, department, role))
    if unread_only:
        stmt = stmt.where(nt.c.read_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(nt.c.id < before_id)
    rows = session.execute(stmt.order_by(nt.c.id.desc()).limit(limit)).all()
    return [_out(r, locale, app_url) for r in rows]


def mark_read(
    session: Session,
    notification_id: int,
    *,
    user_id: int,
    role: str,
    pacage: str | None = None,
    department: str | None = None,
    locale: str = "fr",
    app_url: str,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Mark one of the user's notifications read (idempotent); None when it is not theirs.

    The caller commits the session.
    """
    nt = table_of(Notification)
    visible = and_(nt.c.id == notification_id, _visible_to(user_id, pacage, department, role))
    session.execute(
        update(nt).where(visible, nt.c.read_at.is_(None)).values(read_at=now or datetime.now(UTC))
    )
    row = session.execute(select(nt).where(visible)).first()
    return None if row is None else _out(row, locale, app_url)
