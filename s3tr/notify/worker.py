"""The delivery worker: turn outbox rows into deliveries, claim them, send them, record the outcome.

One run (:func:`deliver_pending`, ``s3tr notify run``, and the end of the nightly run):

1. adds the reminders and the daily digests that are due (:mod:`s3tr.notify.schedule`);
2. *expands* new notifications into one delivery per recipient and channel, following each
   user's preferences and the channels configured in the settings;
3. claims due deliveries in batches — ``pending`` ones whose ``next_attempt_at`` has come, and
   ``sending`` ones whose lease expired (their worker died) — with a status-guarded ``UPDATE``
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers with ``BEGIN
   IMMEDIATE``), so two workers never take the same row;
4. sends each one and records the outcome in its own short transaction, guarded by the lease
   token: ``sent``; back to ``pending`` with exponential backoff on a transient failure;
   ``failed`` with the reason on a permanent one or after the last attempt; ``skipped`` when
   the message no longer makes sense (a reminder for a request answered meanwhile).

Delivery is at-least-once with an idempotency key per delivery: a worker killed between a
successful send and its ``sent`` commit re-sends that one message after the lease expires, with
the same key, so the receiver can drop it. Reminders are held back during quiet hours.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, text, update

from s3tr.notify.channels import (
    Channel,
    Message,
    PermanentSendError,
    TransientSendError,
    channels_from_settings,
)
from s3tr.notify.preferences import preferences_for
from s3tr.notify.schedule import in_quiet_hours, schedule_digests, schedule_reminders
from s3tr.notify.templates import render
from s3tr.review.database import write_connection
from s3tr.review.models import (
    Notification,
    NotificationDelivery,
    PhotoRequest,
    User,
    table_of,
)
from s3tr.settings import Settings, get_settings

__all__ = ["QUIET_KINDS", "DeliverySummary", "claim", "deliver_pending", "expand_pending"]

logger = logging.getLogger(__name__)

#: kinds held back during quiet hours
QUIET_KINDS = ("reminder",)
_MAX_BACKOFF = timedelta(hours=6)
_TRIP_AFTER = 3  # consecutive transient failures before a channel is left alone for this run


@dataclass
class DeliverySummary:
    """What one worker run did."""

    reminders: int = 0
    digests: int = 0
    expanded: int = 0
    deliveries_created: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counts by name."""
        return asdict(self)


def expand_pending(
    engine: Engine, channels: set[str] | frozenset[str], *, now: datetime, batch: int = 500
) -> tuple[int, int]:
    """Create the deliveries of new notifications; returns (notifications expanded, deliveries).

    Farmers' notifications go to every active farmer account of the PACAGE, digests to every
    active instructor of the department. Each user's preferences choose the channels, among
    those configured (``channels``); a notification with none stays readable in the app.
    """
    nt, dt, ut = table_of(Notification), table_of(NotificationDelivery), table_of(User)
    total_n = total_d = 0
    while True:
        with write_connection(engine) as conn:
            pick = select(nt.c.id, nt.c.kind, nt.c.audience, nt.c.user_id, nt.c.pacage, nt.c.department)
            pick = pick.where(nt.c.status == "new").order_by(nt.c.id).limit(batch)
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            notes = conn.execute(pick).all()
            if not notes:
                break
            pacages = {n.pacage for n in notes if n.audience == "farmer"}
            depts = {n.department for n in notes if n.audience == "instructor"}
            direct = {n.user_id for n in notes if n.audience == "user"}
            users = conn.execute(
                select(ut.c.id, ut.c.role, ut.c.pacage, ut.c.department).where(
                    ut.c.active.is_(True),
                    or_(
                        and_(ut.c.role == "farmer", ut.c.pacage.in_(pacages or {""})),
                        and_(ut.c.role == "instructor", ut.c.department.in_(depts or {""})),
                        ut.c.id.in_(direct or {-1}),
                    ),
                )
            ).all()
            by_pacage, by_dept = defaultdict(list), defaultdict(list)
            for u in users:
                if u.role == "farmer":
                    by_pacage[u.pacage].append(u.id)
                if u.role == "instructor":
                    by_dept[u.department].append(u.id)
            prefs = preferences_for(conn, [u.id for u in users])
            rows = []
            for n in notes:
                if n.audience == "farmer":
                    recipients = by_pacage.get(n.pacage, [])
                elif n.audience == "instructor":
                    recipients = by_dept.get(n.department, [])
                else:
                    recipients = [n.user_id] if n.user_id in prefs else []
                for uid in recipients:
                    for channel in prefs[uid].channels_for(n.kind):
                        if channel not in channels:
                            continue
                        rows.append(
                            {
                                "notification_id": n.id,
                                "user_id": uid,
                                "channel": channel,
                                "address": prefs[uid].email if channel == "email" else None,
                                "kind": n.kind,
                                "idempotency_key": f"s3tr-n{n.id}-u{uid}-{channel}",
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_at": now,
                                "created_at": now,
                                "updated_at": now,
                            }
                        )
            if rows:
                conn.execute(insert(dt), rows)
            ids = [n.id for n in notes]
            conn.execute(update(nt).where(nt.c.id.in_(ids), nt.c.status == "new").values(status="expanded"))
            total_n, total_d = total_n + len(notes), total_d + len(rows)
        if len(notes) < batch:
            break
    return total_n, total_d


def claim(
    engine: Engine,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    token: str,
    exclude_kinds: tuple[str, ...] = (),
    channels: tuple[str, ...] | None = None,
) -> list[int]:
    """Reserve up to ``limit`` due deliveries for this worker (``token``); returns their ids.

    Due: ``pending`` with ``next_attempt_at <= now``, or ``sending`` with an expired lease.
    Each claim counts as an attempt, so a message that kills its worker cannot loop forever.
    """
    dt = table_of(NotificationDelivery)
    due = or_(
        and_(dt.c.status == "pending", dt.c.next_attempt_at <= now),
        and_(dt.c.status == "sending", dt.c.lease_until < now),
    )
    pick = select(dt.c.id).where(due)
    if exclude_kinds:
        pick = pick.where(dt.c.kind.not_in(exclude_kinds))
    if channels is not None:
        pick = pick.where(dt.c.channel.in_(channels))
    pick = pick.order_by(dt.c.id).limit(limit)
    with write_connection(engine) as conn:
        if conn.dialect.name == "postgresql":
            # rows another worker is claiming right now are skipped, not waited for
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            update(dt)
            .where(dt.c.id.in_(pick.scalar_subquery()))
            .where(due)  # re-checked: the guard that makes the claim safe
            .values(
                status="sending",
                lease_until=now + lease,
                lease_token=token,
                attempts=dt.c.attempts + 1,
                updated_at=now,
            )
            .returning(dt.c.id)
        )
        return sorted(conn.execute(stmt).scalars().all())


def _load(engine: Engine, ids: list[int]) -> list[dict[str, Any]]:
    dt, nt, ut = table_of(NotificationDelivery), table_of(Notification), table_of(User)
    rq = table_of(PhotoRequest)
    with engine.connect() as conn:
        columns = [
            *(
                dt.c[c]
                for c in ("id", "channel", "address", "kind", "idempotency_key", "attempts", "user_id")
            ),
            ut.c.username,
            ut.c.role,
            ut.c.pacage.label("user_pacage"),
            ut.c.department.label("user_department"),
            nt.c.id.label("notification_id"),
            *(nt.c[c] for c in ("campaign", "id_parcel", "case_id", "request_id", "payload", "created_at")),
            rq.c.state.label("request_state"),
        ]
        rows = (
            conn.execute(
                select(*columns)
                .join(nt, nt.c.id == dt.c.notification_id)
                .join(ut, ut.c.id == dt.c.user_id)
                .outerjoin(rq, rq.c.id == nt.c.request_id)
                .where(dt.c.id.in_(ids))
                .order_by(dt.c.id)
            )
            .mappings()
            .all()
        )
        prefs = preferences_for(conn, {r["user_id"] for r in rows})
    return [dict(r) | {"locale": prefs[r["user_id"]].locale} for r in rows]


def _message(row: Mapping[str, Any], app_url: str) -> Message:
    context = {
        "id_parcel": row["id_parcel"],
        "campaign": row["campaign"],
        "case_id": row["case_id"],
        "request_id": row["request_id"],
        **(row["payload"] or {}),
    }
    text = render(row["kind"], row["locale"], context, app_url=app_url)
    created = row["created_at"]
    if created is not None and created.tzinfo is None:  # SQLite returns naive UTC
        created = created.replace(tzinfo=UTC)
    return Message(
        idempotency_key=row["idempotency_key"],
        kind=row["kind"],
        subject=text.subject,
        body=text.body,
        address=row["address"],
        locale=row["locale"],
        recipient={
            "user_id": row["user_id"],
            "username": row["username"],
            "role": row["role"],
            "pacage": row["user_pacage"],
            "department": row["user_department"],
        },
        data={"notification_id": row["notification_id"], **context},
        created_at=created.isoformat() if created is not None else "",
    )


def _finish(engine: Engine, delivery_id: int, token: str, **values: Any) -> bool:
    dt = table_of(NotificationDelivery)
    with write_connection(engine) as conn:
        if conn.dialect.name == "postgresql":
            # no fsync wait per message: a database crash could lose the last few outcomes, and
            # those messages go again with the same idempotency key — the same at-least-once
            # contract as a worker crash — while each send no longer waits for a disk flush
            conn.execute(text("SET LOCAL synchronous_commit = off"))
        done = conn.execute(
            update(dt)
            .where(dt.c.id == delivery_id, dt.c.lease_token == token, dt.c.status == "sending")
            .values(lease_until=None, **values)
        ).rowcount
    if not done:  # our lease expired and another worker took the row over: its outcome stands
        logger.warning("delivery %s was taken over by another worker; outcome not recorded", delivery_id)
    return bool(done)


def _backoff(settings: Settings, attempts: int) -> timedelta:
    delay = timedelta(seconds=settings.notify_backoff_seconds * 2 ** max(0, attempts - 1))
    return min(delay, _MAX_BACKOFF)


def deliver_pending(
    engine: Engine,
    settings: Settings | None = None,
    now: datetime | None = None,
    *,
    channels: Mapping[str, Channel] | None = None,
    max_messages: int | None = None,
    schedule: bool = True,
) -> DeliverySummary:
    """Send what is due; the one entry point (``s3tr notify run``, end of the nightly run).

    Parameters
    ----------
    engine
        Review database at the head migration.
    settings
        Channels, quiet hours, reminder offsets, retry policy (default: :func:`get_settings`).
    now
        The time of this run (default: now, UTC); injected by tests — the worker never sleeps.
    channels
        Channel objects by name (``email``, ``webhook``) instead of the ones built from the
        settings (the caller then closes them).
    max_messages
        Stop after claiming this many deliveries (None: until nothing is due).
    schedule
        Also add the due reminders and digests first.

    Returns
    -------
    DeliverySummary
        Counts of what was scheduled, expanded, sent, retried, failed, skipped, deferred.
    """
    settings = settings or get_settings()
    when = now or datetime.now(UTC)

    def clock() -> datetime:
        # a long real-time run takes leases from the current time, or they would be born expired
        return when if now is not None else datetime.now(UTC)

    own = channels is None
    chans: dict[str, Channel] = dict(channels_from_settings(settings) if channels is None else channels)
    summary = DeliverySummary()
    token = uuid.uuid4().hex
    lease = timedelta(seconds=settings.notify_lease_seconds)
    tz = settings.notify_timezone
    try:
        if schedule:
            summary.reminders = schedule_reminders(
                engine, offsets_days=settings.notify_reminder_days, now=when, tz=tz
            )
            summary.digests = schedule_digests(engine, now=when, tz=tz)
        summary.expanded, summary.deliveries_created = expand_pending(engine, frozenset(chans), now=when)
        quiet = in_quiet_hours(when, tz, settings.notify_quiet_start, settings.notify_quiet_end)
        exclude = QUIET_KINDS if quiet else ()
        failures: dict[str, int] = defaultdict(int)  # consecutive transient failures per channel
        claimed_total = 0
        while max_messages is None or claimed_total < max_messages:
            # a channel that keeps failing is left alone for the rest of this run
            open_channels = tuple(c for c in chans if failures[c] < _TRIP_AFTER)
            limit = settings.notify_batch_size
            if max_messages is not None:
                limit = min(limit, max_messages - claimed_total)
            # unconfigured channels' rows are claimed too, to be marked skipped with a reason
            ids = claim(
                engine,
                now=clock(),
                limit=limit,
                lease=lease,
                token=token,
                exclude_kinds=exclude,
                channels=None if len(open_channels) == len(chans) else open_channels,
            )
            if not ids:
                break
            claimed_total += len(ids)
            for row in _load(engine, ids):
                _deliver_one(engine, settings, row, chans, failures, token, clock(), summary)
    finally:
        if own:
            for chan in chans.values():
                chan.close()
    logger.info("notification delivery: %s", summary.as_dict())
    return summary


def _deliver_one(
    engine: Engine,
    settings: Settings,
    row: dict[str, Any],
    chans: Mapping[str, Channel],
    failures: dict[str, int],
    token: str,
    now: datetime,
    summary: DeliverySummary,
) -> None:
    did, name = row["id"], row["channel"]
    if row["kind"] == "reminder" and row["request_state"] != "pending":
        _finish(
            engine,
            did,
            token,
            status="skipped",
            last_error="photo request answered or closed",
            updated_at=now,
        )
        summary.skipped += 1
        return
    chan = chans.get(name)
    if chan is None:
        _finish(
            engine,
            did,
            token,
            status="skipped",
            last_error=f"channel {name} is not configured",
            updated_at=now,
        )
        summary.skipped += 1
        return
    if failures[name] >= _TRIP_AFTER:  # tripped during this batch: give the row back untouched
        _finish(
            engine,
            did,
            token,
            status="pending",
            attempts=row["attempts"] - 1,
            updated_at=now,
            next_attempt_at=now + _backoff(settings, 1),
        )
        summary.deferred += 1
        return
    try:
        message = _message(row, settings.notify_app_url)
        chan.send(message)
    except TransientSendError as exc:
        failures[name] += 1
        if row["attempts"] >= settings.notify_max_attempts:
            reason = f"gave up after {row['attempts']} attempts: {exc}"
            _finish(engine, did, token, status="failed", last_error=reason, updated_at=now)
            summary.failed += 1
        else:
            _finish(
                engine,
                did,
                token,
                status="pending",
                last_error=str(exc),
                updated_at=now,
                next_attempt_at=now + _backoff(settings, row["attempts"]),
            )
            summary.retried += 1
        logger.warning("delivery %s (%s) will be retried or failed: %s", did, name, exc)
        return
    except (PermanentSendError, Exception) as exc:  # a bad row (template, data) must not stop the run
        _finish(
            engine, did, token, status="failed", last_error=f"{type(exc).__name__}: {exc}", updated_at=now
        )
        summary.failed += 1
        logger.error("delivery %s (%s) failed for good: %s", did, name, exc)
        return
    failures[name] = 0
    if _finish(engine, did, token, status="sent", sent_at=now, last_error=None, updated_at=now):
        summary.sent += 1
