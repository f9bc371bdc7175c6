"""Tables of the review database (SQLAlchemy 2 declarative models).

The schema itself is created by the Alembic migrations in ``migrations/`` (never by
``create_all`` in production); a test checks that the migrations and these models agree.

* ``declarations``: one row per *version* of a parcel's declaration; a correction (droit à
  l'erreur) adds a version, nothing is overwritten.
* ``decisions``: the history of automatic decisions per (campaign, parcel, control); a row is
  added only when the flag, reasons or evidence changed (``fingerprint``); exactly one row per
  key has ``is_current`` (a partial unique index enforces it).
* ``cases``: the review queue; at most one *active* case per key (partial unique index);
  ``version`` is the optimistic-locking counter.
* ``photo_requests``, ``photos``, ``corrections``, ``users``, ``api_tokens`` (hashed).
* ``audit_log``: append-only (database triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACTIVE_STATES",
    "ApiToken",
    "AuditLog",
    "Base",
    "Case",
    "CaseState",
    "Correction",
    "Decision",
    "Declaration",
    "NightlyRun",
    "Notification",
    "NotificationDelivery",
    "NotificationPreference",
    "Photo",
    "PhotoRequest",
    "User",
    "WorkItem",
    "table_of",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY
Stamp = DateTime(timezone=True)


class CaseState(StrEnum):
    """States of a review case (see :mod:`s3tr.review.cases` for the allowed transitions)."""

    OPEN = "open"
    PHOTO_REQUESTED = "photo_requested"
    PHOTO_RECEIVED = "photo_received"
    DECIDED = "decided"
    CANCELLED = "cancelled"


ACTIVE_STATES = (CaseState.OPEN, CaseState.PHOTO_REQUESTED, CaseState.PHOTO_RECEIVED)
_ACTIVE_SQL = "state IN ('open', 'photo_requested', 'photo_received')"


class Base(DeclarativeBase):
    """Declarative base with a deterministic constraint naming convention (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JsonType, list[str]: JsonType}


class Declaration(Base):
    """One version of a parcel's declaration."""

    __tablename__ = "declarations"
    __table_args__ = (
        UniqueConstraint("campaign", "id_parcel", "version"),
        Index(None, "campaign", "pacage"),
        Index(None, "campaign", "commune"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign: Mapped[int] = mapped_column(Integer)
    id_parcel: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    code_cultu: Mapped[str] = mapped_column(String(8))
    code_group: Mapped[int | None] = mapped_column(Integer)
    surf_parc: Mapped[float | None] = mapped_column(Float)
    pacage: Mapped[str | None] = mapped_column(String(9))
    department: Mapped[str | None] = mapped_column(String(3))
    # Where the parcel lies (INSEE code), when the parcels file says: descriptive, for the instructors'
    # filters; not a declared attribute, so a change updates every version in place instead of adding one.
    commune: Mapped[str | None] = mapped_column(String(5))
    geometry_wkt: Mapped[str | None] = mapped_column(Text)
    crs: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))  # "declaration" | "correction"
    created_at: Mapped[datetime] = mapped_column(Stamp)


class Decision(Base):
    """One automatic decision of one control on one parcel (history; ``is_current`` marks the latest)."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("campaign", "id_parcel", "control", "revision"),
        Index(
            "uq_decisions_current",
            "campaign",
            "id_parcel",
            "control",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index(None, "campaign", "flag"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign: Mapped[int] = mapped_column(Integer)
    id_parcel: Mapped[str] = mapped_column(String(64))
    control: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean)
    flag: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JsonType)
    evidence: Mapped[dict[str, Any]] = mapped_column(JsonType)
    fingerprint: Mapped[str] = mapped_column(String(64))
    explanation_fr: Mapped[str] = mapped_column(Text)
    explanation_en: Mapped[str] = mapped_column(Text)
    ruleset_version: Mapped[str] = mapped_column(String(64))
    marker_version: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(3))
    pacage: Mapped[str | None] = mapped_column(String(9))
    surf_parc: Mapped[float | None] = mapped_column(Float)
    run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Stamp)


class Case(Base):
    """A review case: an orange decision a DDT instructor must settle."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(
            "uq_cases_active",
            "campaign",
            "id_parcel",
            "control",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index(None, "campaign", "id_parcel", "control"),
        Index(None, "department", "state"),
        Index(None, "state"),
        # The instructors' queue: a department's cases, highest priority first (a first page without a sort).
        Index(None, "department", "priority"),
    )

    case_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign: Mapped[int] = mapped_column(Integer)
    id_parcel: Mapped[str] = mapped_column(String(64))
    control: Mapped[str] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(String(3))
    pacage: Mapped[str | None] = mapped_column(String(9))
    surf_parc: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    flag: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JsonType)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    priority: Mapped[float] = mapped_column(Float)
    deadline: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(String(8))  # the instructor's green/red
    outcome_note: Mapped[str | None] = mapped_column(Text)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    updated_at: Mapped[datetime] = mapped_column(Stamp)
    closed_at: Mapped[datetime | None] = mapped_column(Stamp)

    __mapper_args__: ClassVar = {"version_id_col": version}  # type: ignore[misc]


class PhotoRequest(Base):
    """A request to the farmer for geotagged photos of a spot of the parcel."""

    __tablename__ = "photo_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), index=True)
    target_lon: Mapped[float | None] = mapped_column(Float)
    target_lat: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    instructions: Mapped[str] = mapped_column(Text)
    deadline: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))  # pending | fulfilled | expired | cancelled
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    fulfilled_at: Mapped[datetime | None] = mapped_column(Stamp)


class Photo(Base):
    """A geotagged photo received for a case, with the result of its checks."""

    __tablename__ = "photos"
    __table_args__ = (
        # a retry with the same Idempotency-Key cannot store a second photo, even in a race
        Index(None, "uploaded_by", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("photo_requests.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), index=True)
    # not unique: an exact duplicate is stored too, with its failed duplicate check (issue 6)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    phash: Mapped[str | None] = mapped_column(String(64))  # perceptual hash (hex), for near-duplicates
    view: Mapped[str | None] = mapped_column(String(16))  # general | closeup
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    taken_at: Mapped[datetime | None] = mapped_column(Stamp)
    received_at: Mapped[datetime] = mapped_column(Stamp)
    device: Mapped[dict[str, Any]] = mapped_column(JsonType)
    checks: Mapped[dict[str, Any]] = mapped_column(JsonType)
    storage_path: Mapped[str] = mapped_column(Text)


class Correction(Base):
    """A farmer's correction of a declaration (droit à l'erreur): links two declaration versions."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign: Mapped[int] = mapped_column(Integer)
    id_parcel: Mapped[str] = mapped_column(String(64))
    pacage: Mapped[str | None] = mapped_column(String(9))
    from_declaration_id: Mapped[int | None] = mapped_column(ForeignKey("declarations.id"))
    to_declaration_id: Mapped[int] = mapped_column(ForeignKey("declarations.id"))
    within_window: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(Stamp)

    __table_args__ = (Index(None, "campaign", "id_parcel"),)


class User(Base):
    """A person or service using the API (instructor, farmer, operator)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # instructor | farmer | operator | admin
    pacage: Mapped[str | None] = mapped_column(String(9))
    department: Mapped[str | None] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(Stamp)


class ApiToken(Base):
    """An API token; only its SHA-256 hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime | None] = mapped_column(Stamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Stamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Stamp)


class AuditLog(Base):
    """Append-only trail of every change (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "entity", "entity_id"), Index(None, "campaign", "id_parcel"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Stamp)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[int | None] = mapped_column(Integer)
    id_parcel: Mapped[str | None] = mapped_column(String(64))
    control: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonType)


class NightlyRun(Base):
    """One nightly run: its options, status (running/ok/partial/failed), counts and timings."""

    __tablename__ = "nightly_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(Stamp)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp)
    status: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JsonType)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)


class WorkItem(Base):
    """One (tile, acquisition) of a run's plan; ``applied`` once its parcels were re-decided."""

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("run_id", "tile", "acquisition_id"),
        Index(None, "tile", "acquisition_id"),
        Index(None, "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("nightly_runs.id"))
    tile: Mapped[str] = mapped_column(String(16))
    acquisition_id: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(Stamp)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    applied: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime | None] = mapped_column(Stamp)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class Notification(Base):
    """One event to tell someone about (the transactional outbox; see :mod:`s3tr.notify`).

    Written in the same transaction as the change it reports. ``audience`` says who receives it:
    the farmers of ``pacage``, the instructors of ``department`` (the daily digest) or one
    ``user_id``. ``status`` is ``new`` until the worker has created its deliveries (``expanded``).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index(None, "status"),
        Index(None, "pacage", "created_at"),
        Index(None, "request_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    audience: Mapped[str] = mapped_column(String(16))  # farmer | instructor | user
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    pacage: Mapped[str | None] = mapped_column(String(9))
    department: Mapped[str | None] = mapped_column(String(3))
    campaign: Mapped[int | None] = mapped_column(Integer)
    id_parcel: Mapped[str | None] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(BigId)
    request_id: Mapped[int | None] = mapped_column(BigId)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # new | expanded
    created_at: Mapped[datetime] = mapped_column(Stamp)
    read_at: Mapped[datetime | None] = mapped_column(Stamp)


class NotificationDelivery(Base):
    """One notification to one user on one channel, with its delivery state.

    ``status``: pending -> sending (claimed under ``lease_token`` until ``lease_until``) -> sent,
    or back to pending with ``next_attempt_at`` (transient failure), or failed / skipped with
    ``last_error``. ``idempotency_key`` is sent with the message (webhook header, e-mail
    Message-ID) so a receiver can drop a repeat.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "user_id", "channel"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    address: Mapped[str | None] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(Stamp)
    lease_until: Mapped[datetime | None] = mapped_column(Stamp)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(Stamp)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    updated_at: Mapped[datetime] = mapped_column(Stamp)


class NotificationPreference(Base):
    """A user's notification settings (no row: defaults — push on, e-mail off, French)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, autoincrement=False)
    email: Mapped[str | None] = mapped_column(String(320))
    email_enabled: Mapped[bool] = mapped_column(Boolean)
    push_enabled: Mapped[bool] = mapped_column(Boolean)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    muted_kinds: Mapped[list[str]] = mapped_column(JsonType)
    locale: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(Stamp)


def table_of(model: type[Base]) -> Table:
    """The Core :class:`~sqlalchemy.Table` of a model (typed, for bulk Core statements)."""
    return cast(Table, model.__table__)
