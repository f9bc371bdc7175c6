"""review stage: the DDT review queue — decisions history, cases, photos, corrections, audit trail.

The database is SQLite by default (``<workdir>/s3tr.db``) or PostgreSQL
(``postgresql+psycopg://``); its schema comes from the Alembic migrations in ``migrations/``
(:func:`upgrade`). This stage stores decisions computed by :mod:`s3tr.decide`; it never
computes them.

Modules: ``database`` (engines, sessions), ``models`` (tables), ``migrate`` (Alembic),
``cases`` (state machine, nightly :func:`sync_decisions`, :func:`list_cases`),
``declarations`` (versioned declarations, corrections), ``requests`` (photo requests and
photos), ``users`` (users, hashed API tokens).
"""

from __future__ import annotations

from s3tr.review.cases import (
    CASE_COLUMNS,
    TRANSITIONS,
    CaseConflictError,
    CaseNotFoundError,
    CaseTransitionError,
    SyncBusyError,
    SyncSummary,
    get_case,
    list_cases,
    sync_decisions,
    transition_case,
)
from s3tr.review.database import db_url_for, make_engine, session_scope, write_connection
from s3tr.review.declarations import (
    CorrectionResult,
    DeclarationSummary,
    current_declarations,
    record_correction,
    sync_declarations,
)
from s3tr.review.migrate import check_schema, current_revision, downgrade, head_revision, upgrade
from s3tr.review.models import ACTIVE_STATES, CaseState

__all__ = [
    "ACTIVE_STATES",
    "CASE_COLUMNS",
    "TRANSITIONS",
    "CaseConflictError",
    "CaseNotFoundError",
    "CaseState",
    "CaseTransitionError",
    "CorrectionResult",
    "DeclarationSummary",
    "SyncBusyError",
    "SyncSummary",
    "check_schema",
    "current_declarations",
    "current_revision",
    "db_url_for",
    "downgrade",
    "get_case",
    "head_revision",
    "list_cases",
    "make_engine",
    "record_correction",
    "session_scope",
    "sync_decisions",
    "sync_declarations",
    "transition_case",
    "upgrade",
    "write_connection",
]
