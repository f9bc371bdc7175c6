"""The review queue: case state machine, nightly sync of decisions, listing.

State machine (``decided -> open`` is an instructor's reopen)::

    open ──> photo_requested ──> photo_received ──> decided ──> open
      │            │       ^──────────┘  │
      └────────────┴──> cancelled <──────┘        (open/photo_* -> decided directly too)

Nightly sync rules (:func:`sync_decisions`), keyed by (campaign, id_parcel, control):

* a decision row is added only when the flag, reasons or evidence changed (its fingerprint);
  the previous one stays in the history with ``is_current = false``;
* an **orange** decision opens a case when the key has no active case, unless the latest closed
  case (decided or cancelled) already carried the same flag and reasons — the instructor's
  verdict stands until the evidence tells something new;
* an orange decision that changed updates the active case (flag, reasons, decision, priority);
* a **green/red** decision *cancels* an active case still in ``open`` (nobody has worked on it:
  the satellite settled it), and only *updates* a case already in ``photo_requested`` or
  ``photo_received`` (the farmer was contacted; the instructor finishes it, seeing the new flag);
* decided cases are never reopened by the nightly run (that is the instructor's call).

The evaluation looks at the whole state of each key, not only at what changed, so a run that
died midway (nothing committed: one transaction) is completed by the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import JSON, Connection, Engine, String, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from s3tr.decide.rules import RuleSet, load_ruleset
from s3tr.errors import ConfigError, DatabaseError, S3trError, TransientError
from s3tr.frames import records
from s3tr.notify.outbox import Kind, enqueue, enqueue_many
from s3tr.review.database import refresh_statistics, session_scope, write_connection
from s3tr.review.models import _ACTIVE_SQL, ACTIVE_STATES, AuditLog, Case, CaseState, Decision, table_of

__all__ = [
    "CASE_COLUMNS",
    "TRANSITIONS",
    "CaseConflictError",
    "CaseNotFoundError",
    "CaseTransitionError",
    "SyncBusyError",
    "SyncSummary",
    "decision_fingerprint",
    "get_case",
    "list_cases",
    "sync_decisions",
    "transition_case",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    CaseState.OPEN: frozenset({CaseState.PHOTO_REQUESTED, CaseState.DECIDED, CaseState.CANCELLED}),
    CaseState.PHOTO_REQUESTED: frozenset({CaseState.PHOTO_RECEIVED, CaseState.DECIDED, CaseState.CANCELLED}),
    CaseState.PHOTO_RECEIVED: frozenset({CaseState.PHOTO_REQUESTED, CaseState.DECIDED, CaseState.CANCELLED}),
    CaseState.DECIDED: frozenset({CaseState.OPEN}),
    CaseState.CANCELLED: frozenset(),
}
"""Allowed transitions: state -> states it may move to."""

CASE_COLUMNS = [
    "case_id",
    "id_parcel",
    "campaign",
    "control",
    "state",
    "flag",
    "reasons",
    "priority",
    "deadline",
    "updated_at",
]
_KEY = ["campaign", "id_parcel", "control"]
_CHUNK = 1000  # parcels per IN (...) query: well under SQLite's bound-parameter limit
_ACTIVE = [s.value for s in ACTIVE_STATES]


class CaseTransitionError(S3trError, ValueError):
    """A case was asked to move to a state its current state does not allow."""


class CaseConflictError(S3trError, RuntimeError):
    """Someone else changed the case first (optimistic locking): reload it and try again."""


class CaseNotFoundError(S3trError, LookupError):
    """No case with this id."""


class SyncBusyError(TransientError):
    """The nightly sync kept colliding with concurrent writers; rerun it (it is idempotent)."""


@dataclass(frozen=True)
class SyncSummary:
    """What one :func:`sync_decisions` call changed."""

    decisions_new: int
    decisions_changed: int
    decisions_unchanged: int
    cases_opened: int
    cases_updated: int
    cases_cancelled: int

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for run reports and JSON)."""
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _json_safe(value: Any) -> Any:
    if value is None or type(value) in (str, int, bool):  # most evidence values: the fast way out
        return value
    if type(value) is float:
        return None if value != value else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def decision_fingerprint(flag: str, reasons: Sequence[str], evidence: dict[str, Any]) -> str:
    """SHA-256 of a decision's flag, reasons and evidence (canonical JSON): equal iff nothing changed."""
    return _fingerprint(flag, reasons, _json_safe(evidence))


def _fingerprint(flag: str, reasons: Sequence[str], safe_evidence: dict[str, Any]) -> str:
    """:func:`decision_fingerprint` of evidence already passed through :func:`_json_safe`."""
    payload = json.dumps(
        {"flag": str(flag), "reasons": list(reasons), "evidence": safe_evidence},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer inserted the same key first: re-read and re-evaluate
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None)
        if code in ("40001", "40P01"):  # serialization failure, deadlock detected
            return True
        if isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower():
            return True
    return False


def _with_retries(fn: Callable[[], T], *, what: str, attempts: int = 6) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DBAPIError as exc:
            if not _retryable(exc) or attempt == attempts:
                if _retryable(exc):
                    raise SyncBusyError(f"{what}: gave up after {attempts} attempts ({exc.orig})") from exc
                raise
            delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
            logger.info(
                "%s: concurrent write (%s), retry %d in %.2f s", what, type(exc.orig).__name__, attempt, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _for_parcels(conn: Connection, stmt, column, parcels: list[str]):  # type: ignore[no-untyped-def]
    """``stmt`` restricted to ``column`` in ``parcels``, as one or more statements.

    PostgreSQL joins an ``unnest``-ed array parameter (a hash or index join: a long ``IN`` list
    on a freshly loaded, not yet analysed table is planned as a sequential scan that compares
    every row with every value); SQLite uses ``IN`` lists in chunks under its bound-parameter
    limit (it answers them with index lookups).
    """
    if conn.dialect.name == "postgresql":
        ids = select(
            func.unnest(bindparam("s3tr_ids", list(parcels), type_=postgresql.ARRAY(String))).label("pid")
        ).subquery()
        yield stmt.join(ids, column == ids.c.pid)
        return
    for chunk in _chunks(parcels):
        yield stmt.where(column.in_(chunk))


def _copy_rows(conn: Connection, table, rows: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    """Append rows with PostgreSQL ``COPY`` inside the connection's current transaction."""
    import psycopg
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    raw = conn.connection.driver_connection
    if raw is None:  # pragma: no cover - an open SQLAlchemy connection always has one
        raise DatabaseError("no open driver connection for COPY")
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row([Jsonb(row[c]) if c in json_cols else row[c] for c in columns])
    except psycopg.Error as exc:
        # the raw driver error, wrapped like SQLAlchemy does (IntegrityError, OperationalError...),
        # so that the retry logic treats a COPY like any other statement
        raise DBAPIError.instance(sql, None, exc, psycopg.Error, dialect=conn.dialect) from exc


def _upsert_insert(conn: Connection):  # type: ignore[no-untyped-def]
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def _prepare(decisions: pd.DataFrame) -> pd.DataFrame:
    need = {"id_parcel", "campaign", "control", "flag", "reasons", "evidence", "ruleset_version"}
    missing = need - set(decisions.columns)
    if missing:
        raise ConfigError(
            f"decisions table lacks columns {sorted(missing)} (expected the output of decide())"
        )
    df = pd.DataFrame(decisions).copy()
    df["id_parcel"] = df["id_parcel"].astype(str)
    df["campaign"] = pd.to_numeric(df["campaign"]).astype(int)
    df["control"] = df["control"].astype(str)
    df["flag"] = df["flag"].astype(str)
    df["reasons"] = [list(r) if isinstance(r, list | tuple) else [] for r in df["reasons"]]
    df["evidence"] = [_json_safe(e) if isinstance(e, dict) else {} for e in df["evidence"]]
    for col in (
        "explanation_fr",
        "explanation_en",
        "marker_version",
        "model_version",
        "department",
        "pacage",
    ):
        if col not in df.columns:
            df[col] = None
    if "surf_parc" not in df.columns:
        df["surf_parc"] = float("nan")
    dupes = df.duplicated(_KEY, keep="last")
    if dupes.any():
        logger.warning(
            "%d duplicated (campaign, id_parcel, control) rows in the batch: the last wins", int(dupes.sum())
        )
        df = df[~dupes]
    df["fingerprint"] = [
        _fingerprint(f, r, e) for f, r, e in zip(df["flag"], df["reasons"], df["evidence"], strict=True)
    ]
    # a stable order keeps concurrent writers locking rows in the same order (fewer deadlocks)
    return df.sort_values(_KEY, kind="stable").reset_index(drop=True)


def _none(value: Any) -> Any:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


@lru_cache(maxsize=64)
def _ruleset_for(campaign: int, department: str | None) -> RuleSet:
    return load_ruleset(campaign, department)


# --------------------------------------------------------------------------- nightly sync


def _load_current(conn: Connection, campaign: int, parcels: list[str]) -> pd.DataFrame:
    t = table_of(Decision)
    rows: list[Any] = []
    for stmt in _for_parcels(
        conn,
        select(
            t.c.id, t.c.id_parcel, t.c.control, t.c.revision, t.c.fingerprint, t.c.flag, t.c.reasons
        ).where(t.c.campaign == campaign, t.c.is_current.is_(True)),
        t.c.id_parcel,
        parcels,
    ):
        rows.extend(conn.execute(stmt).all())
    names = ["decision_id", "id_parcel", "control", "revision", "old_fingerprint", "old_flag", "old_reasons"]
    # Column by column: pandas reads a list of rows element by element, 2x the query's own time here.
    if not rows:
        return pd.DataFrame(columns=names)
    return pd.DataFrame({name: list(col) for name, col in zip(names, zip(*rows, strict=True), strict=True)})


def _load_cases(conn: Connection, campaign: int, parcels: list[str]) -> pd.DataFrame:
    t = table_of(Case)
    rows: list[Any] = []
    base = (
        select(
            t.c.case_id,
            t.c.id_parcel,
            t.c.control,
            t.c.state,
            t.c.flag,
            t.c.reasons,
            t.c.decision_id,
            t.c.version,
            t.c.priority,
        )
        .where(t.c.campaign == campaign)
        .order_by(t.c.case_id)
        # PostgreSQL: instructors' transitions wait for the sync (SQLite: already exclusive)
        .with_for_update(of=t)
    )
    for stmt in _for_parcels(conn, base, t.c.id_parcel, parcels):
        rows.extend(conn.execute(stmt).all())
    return pd.DataFrame(
        rows,
        columns=[
            "case_id",
            "id_parcel",
            "control",
            "state",
            "case_flag",
            "case_reasons",
            "case_decision_id",
            "version",
            "case_priority",
        ],
    )


def _sync_campaign(
    conn: Connection,
    df: pd.DataFrame,
    campaign: int,
    *,
    run_id: str,
    ruleset: RuleSet | None,
    now: datetime,
    actor: str,
) -> SyncSummary:
    parcels = sorted(df["id_parcel"].unique())
    current = _load_current(conn, campaign, parcels)
    merged = df.merge(current, on=["id_parcel", "control"], how="left")
    is_new = merged["decision_id"].isna()
    is_changed = ~is_new & (merged["old_fingerprint"] != merged["fingerprint"])
    dt = table_of(Decision)

    # 1. decisions: retire the changed ones, insert new revisions
    changed_ids = [int(i) for i in merged.loc[is_changed, "decision_id"]]
    for chunk in _chunks(changed_ids):
        conn.execute(update(dt).where(dt.c.id.in_(chunk)).values(is_current=False))
    to_insert = merged[is_new | is_changed]
    new_rows = [
        {
            "campaign": campaign,
            "id_parcel": r["id_parcel"],
            "control": r["control"],
            "revision": 1 if pd.isna(r["revision"]) else int(r["revision"]) + 1,
            "is_current": True,
            "flag": r["flag"],
            "reasons": r["reasons"],
            "evidence": r["evidence"],
            "fingerprint": r["fingerprint"],
            "explanation_fr": _none(r["explanation_fr"]) or "",
            "explanation_en": _none(r["explanation_en"]) or "",
            "ruleset_version": str(r["ruleset_version"]),
            "marker_version": _none(r["marker_version"]),
            "model_version": _none(r["model_version"]),
            "department": _none(r["department"]),
            "pacage": _none(r["pacage"]),
            "surf_parc": _none(r["surf_parc"]),
            "run_id": run_id,
            "created_at": now,
        }
        for r in records(to_insert)
    ]
    audit: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []  # the farmers hear of flag changes (outbox, same transaction)
    if new_rows:
        if conn.dialect.name == "postgresql":
            # COPY is an order of magnitude faster than multi-row INSERTs; the ids are read back
            _copy_rows(conn, dt, new_rows)
            fresh = _load_current(conn, campaign, sorted({r["id_parcel"] for r in new_rows}))
            keys = zip(fresh["id_parcel"], fresh["control"], strict=True)
            ids = dict(zip(keys, fresh["decision_id"], strict=True))
            returned: list[int] = [int(ids[(r["id_parcel"], r["control"])]) for r in new_rows]
        else:
            returned = list(
                conn.execute(insert(dt).returning(dt.c.id, sort_by_parameter_order=True), new_rows)
                .scalars()
                .all()
            )
        merged.loc[to_insert.index, "decision_id"] = returned
        # Records, not iterrows(): a Series per row cost a fifth of a first night's sync.
        previous_rows = records(to_insert[["old_flag", "old_reasons"]])
        for row, new_id, old in zip(new_rows, returned, previous_rows, strict=True):
            audit.append(
                _audit(
                    now,
                    actor,
                    "decision_changed" if row["revision"] > 1 else "decision_created",
                    "decision",
                    new_id,
                    campaign,
                    row["id_parcel"],
                    row["control"],
                    run_id,
                    {
                        "flag": row["flag"],
                        "reasons": row["reasons"],
                        "revision": row["revision"],
                        "previous_flag": _none(old["old_flag"]),
                        "previous_reasons": old["old_reasons"]
                        if isinstance(old["old_reasons"], list)
                        else None,
                    },
                )
            )
            previous = _none(old["old_flag"])
            if row["revision"] > 1 and previous not in (None, row["flag"]) and row["pacage"]:
                notices.append(
                    {
                        "kind": Kind.FLAG_CHANGED,
                        "pacage": row["pacage"],
                        "department": row["department"],
                        "campaign": campaign,
                        "id_parcel": row["id_parcel"],
                        "payload": {
                            "control": row["control"],
                            "flag": row["flag"],
                            "previous_flag": previous,
                            "reasons": row["reasons"],
                        },
                        "now": now,
                    }
                )
    merged["decision_id"] = merged["decision_id"].astype("int64")

    # 2. cases
    cases = _load_cases(conn, campaign, parcels)
    active = cases[cases["state"].isin(_ACTIVE)].drop_duplicates(["id_parcel", "control"], keep="last")
    closed = cases[~cases["state"].isin(_ACTIVE)].drop_duplicates(["id_parcel", "control"], keep="last")
    m = merged.merge(active, on=["id_parcel", "control"], how="left").merge(
        closed[["id_parcel", "control", "case_flag", "case_reasons"]].rename(
            columns={"case_flag": "closed_flag", "case_reasons": "closed_reasons"}
        ),
        on=["id_parcel", "control"],
        how="left",
    )
    rates = {}
    deadlines = {}
    for dept in m["department"].drop_duplicates():
        rs = ruleset or _ruleset_for(campaign, _none(dept))
        rates[_none(dept)] = rs
        deadlines[_none(dept)] = now.date() + timedelta(days=rs.review.case_deadline_days)
    m["_rs"] = [rates[_none(d)] for d in m["department"]]
    m["priority"] = [
        round(float(s) * rs.aid_rate(c), 2) if _none(s) is not None else 0.0
        for s, rs, c in zip(m["surf_parc"], m["_rs"], m["control"], strict=True)
    ]
    has_active = m["case_id"].notna()
    orange = m["flag"] == "orange"
    same_as_closed = [
        isinstance(cr, list) and cf == f and cr == r
        for cf, cr, f, r in zip(m["closed_flag"], m["closed_reasons"], m["flag"], m["reasons"], strict=True)
    ]
    to_open = m[orange & ~has_active & ~pd.Series(same_as_closed, index=m.index)]
    stale = has_active & (
        (m["case_decision_id"] != m["decision_id"])
        | (m["case_flag"] != m["flag"])
        | (m["case_priority"] != m["priority"])
    )
    to_cancel = m[has_active & ~orange & (m["state"] == CaseState.OPEN.value)]
    to_update = m[stale & ~(has_active & ~orange & (m["state"] == CaseState.OPEN.value))]

    ct = table_of(Case)
    opened = 0
    if len(to_open):
        rows = [
            {
                "campaign": campaign,
                "id_parcel": r["id_parcel"],
                "control": r["control"],
                "department": _none(r["department"]),
                "pacage": _none(r["pacage"]),
                "surf_parc": _none(r["surf_parc"]),
                "state": CaseState.OPEN.value,
                "flag": r["flag"],
                "reasons": r["reasons"],
                "decision_id": int(r["decision_id"]),
                "priority": r["priority"],
                "deadline": deadlines[_none(r["department"])],
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
            for r in records(to_open)
        ]
        ins = _upsert_insert(conn)(ct).on_conflict_do_nothing(
            index_elements=_KEY, index_where=text(_ACTIVE_SQL)
        )
        for case_rows in _chunks(rows):
            got = conn.execute(
                ins.returning(ct.c.case_id, ct.c.id_parcel, ct.c.control), list(case_rows)
            ).all()
            opened += len(got)
            audit.extend(
                _audit(now, actor, "case_opened", "case", cid, campaign, pid, ctl, run_id, {"state": "open"})
                for cid, pid, ctl in got
            )

    def _bulk_update(frame: pd.DataFrame, *, cancel: bool) -> int:
        if frame.empty:
            return 0
        params = [
            {
                "b_case_id": int(r["case_id"]),
                "b_version": int(r["version"]),
                "b_flag": r["flag"],
                "b_reasons": r["reasons"],
                "b_decision_id": int(r["decision_id"]),
                "b_priority": r["priority"],
            }
            for r in records(frame)
        ]
        values: dict[str, Any] = {
            "flag": bindparam("b_flag"),
            "reasons": bindparam("b_reasons", type_=ct.c.reasons.type),
            "decision_id": bindparam("b_decision_id"),
            "priority": bindparam("b_priority"),
            "version": ct.c.version + 1,
            "updated_at": now,
        }
        if cancel:
            values.update(state=CaseState.CANCELLED.value, closed_at=now)
        stmt = (
            update(ct)
            .where(ct.c.case_id == bindparam("b_case_id"), ct.c.version == bindparam("b_version"))
            .values(values)
        )
        done = 0
        for chunk in _chunks(params):
            res = conn.execute(stmt, list(chunk))
            done += res.rowcount if conn.dialect.supports_sane_multi_rowcount else len(chunk)
        for r in records(frame):
            audit.append(
                _audit(
                    now,
                    actor,
                    "case_cancelled" if cancel else "case_updated",
                    "case",
                    int(r["case_id"]),
                    campaign,
                    r["id_parcel"],
                    r["control"],
                    run_id,
                    {
                        "flag": r["flag"],
                        "reasons": r["reasons"],
                        "previous_flag": r["case_flag"],
                        "state": "cancelled" if cancel else r["state"],
                        "decision_id": int(r["decision_id"]),
                    },
                )
            )
        return done

    cancelled = _bulk_update(to_cancel, cancel=True)
    updated = _bulk_update(to_update, cancel=False)
    enqueue_many(conn, notices)
    if audit:
        at = table_of(AuditLog)
        if conn.dialect.name == "postgresql":
            _copy_rows(conn, at, audit)
        else:
            for audit_rows in _chunks(audit, 5000):
                conn.execute(insert(at), list(audit_rows))
    return SyncSummary(
        decisions_new=int(is_new.sum()),
        decisions_changed=int(is_changed.sum()),
        decisions_unchanged=int((~is_new & ~is_changed).sum()),
        cases_opened=opened,
        cases_updated=updated,
        cases_cancelled=cancelled,
    )


def _audit(
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: Any,
    campaign: int | None,
    id_parcel: str | None,
    control: str | None,
    run_id: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": None if entity_id is None else str(entity_id),
        "campaign": campaign,
        "id_parcel": id_parcel,
        "control": control,
        "run_id": run_id,
        "details": _json_safe(details),
    }


def sync_decisions(
    engine: Engine,
    decisions: pd.DataFrame,
    *,
    run_id: str,
    ruleset: RuleSet | None = None,
    now: datetime | None = None,
    actor: str = "nightly",
) -> SyncSummary:
    """Upsert a batch of decisions and update the review queue, in one transaction.

    Parameters
    ----------
    engine
        Engine of a database at the head migration.
    decisions
        The output of :func:`s3tr.decide.decide` (one row per parcel and control).
    run_id
        Identifier of the run, recorded on new decision rows and in the audit log.
    ruleset
        Rule set for priorities and deadlines; default: :func:`load_ruleset` per campaign and
        department.
    now
        Timestamp to record (default: current UTC time).
    actor
        Who is writing, for the audit log.

    Returns
    -------
    SyncSummary
        Counts of new/changed/unchanged decisions and opened/updated/cancelled cases. Running it
        twice with the same decisions gives zeros the second time (except ``decisions_unchanged``).

    Raises
    ------
    SyncBusyError
        When concurrent writers kept conflicting after several retries (rerun: it is idempotent).
    """
    df = _prepare(decisions)
    when = now or _now()

    def attempt() -> SyncSummary:
        total = SyncSummary(0, 0, 0, 0, 0, 0)
        with write_connection(engine) as conn:
            for campaign, part in df.groupby("campaign", sort=True):
                s = _sync_campaign(
                    conn, part, int(campaign), run_id=run_id, ruleset=ruleset, now=when, actor=actor
                )
                total = SyncSummary(
                    *(a + b for a, b in zip(asdict(total).values(), asdict(s).values(), strict=True))
                )
        return total

    summary = _with_retries(attempt, what="sync_decisions")
    logger.info("sync_decisions run %s: %s", run_id, summary.as_dict())
    written = sum(summary.as_dict().values()) - summary.decisions_unchanged
    refresh_statistics(engine, ["decisions", "cases", "audit_log"], rows_written=written)
    return summary


# --------------------------------------------------------------------------- state machine


def _check_transition(case: Case, to_state: CaseState) -> None:
    current = CaseState(case.state)
    if to_state not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final state)"
        raise CaseTransitionError(
            f"case {case.case_id} ({case.id_parcel}/{case.control}) cannot go from {current.value} to "
            f"{to_state.value}; allowed from {current.value}: {allowed}"
        )


def _case_dict(case: Case) -> dict[str, Any]:
    return {c.name: getattr(case, c.key) for c in table_of(Case).columns}


def transition_case(
    engine: Engine,
    case_id: int,
    to_state: CaseState | str,
    *,
    actor: str,
    expected_version: int | None = None,
    outcome: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move a case to another state, guarded and optimistic-locked.

    Parameters
    ----------
    engine
        Review database engine.
    case_id
        The case.
    to_state
        Target state; must be allowed from the current one (:data:`TRANSITIONS`).
    actor
        Who acts (username), for the audit log.
    expected_version
        The case version the actor saw (e.g. from the API's GET): if the case changed since,
        :class:`CaseConflictError`. ``None`` skips that check (the row-version guard still holds
        within this transaction).
    outcome
        ``"green"`` or ``"red"``: required when deciding, forbidden otherwise.
    note
        Free text recorded with the outcome and in the audit log.

    Returns
    -------
    dict
        The case's columns after the change.

    Raises
    ------
    CaseNotFoundError, CaseTransitionError, CaseConflictError
    """
    target = CaseState(to_state)
    if target == CaseState.DECIDED and outcome not in ("green", "red"):
        raise CaseTransitionError(f"deciding case {case_id} needs outcome='green' or 'red', got {outcome!r}")
    if target != CaseState.DECIDED and outcome is not None:
        raise CaseTransitionError(
            f"an outcome is only given when deciding (case {case_id} -> {target.value})"
        )
    when = now or _now()
    try:
        with session_scope(engine, write=True) as session:
            return _transition(
                session,
                case_id,
                target,
                actor=actor,
                expected_version=expected_version,
                outcome=outcome,
                note=note,
                now=when,
            )
    except StaleDataError as exc:
        raise CaseConflictError(
            f"case {case_id} was changed by someone else at the same time; reload it and try again"
        ) from exc
    except OperationalError as exc:
        if "locked" in str(exc.orig).lower():
            raise CaseConflictError(f"case {case_id} is being changed by another writer; try again") from exc
        raise


def _transition(
    session: Session,
    case_id: int,
    target: CaseState,
    *,
    actor: str,
    expected_version: int | None,
    outcome: str | None,
    note: str | None,
    now: datetime,
) -> dict[str, Any]:
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    if expected_version is not None and case.version != expected_version:
        raise CaseConflictError(
            f"case {case_id} is at version {case.version}, not {expected_version}: someone changed it "
            f"(now {case.state}); reload it and try again"
        )
    _check_transition(case, target)
    before = case.state
    case.state = target.value
    case.updated_at = now
    if target == CaseState.DECIDED:
        case.outcome, case.outcome_note, case.closed_at = outcome, note, now
    elif target == CaseState.CANCELLED:
        case.closed_at = now
    elif target == CaseState.OPEN:  # reopen
        case.outcome, case.closed_at = None, None
    session.flush()  # the UPDATE ... WHERE version = :seen happens here (StaleDataError on a lost race)
    session.add(
        AuditLog(
            **_audit(
                now,
                actor,
                f"case_{target.value}",
                "case",
                case.case_id,
                case.campaign,
                case.id_parcel,
                case.control,
                None,
                {
                    "from": before,
                    "to": target.value,
                    "outcome": outcome,
                    "note": note,
                    "version": case.version,
                },
            )
        )
    )
    if target == CaseState.DECIDED and case.pacage:
        enqueue(
            session,
            Kind.CASE_DECIDED,
            pacage=case.pacage,
            department=case.department,
            campaign=case.campaign,
            id_parcel=case.id_parcel,
            case_id=case.case_id,
            payload={"control": case.control, "outcome": outcome, "note": note},
            now=now,
        )
    return _case_dict(case)


def get_case(engine: Engine, case_id: int) -> dict[str, Any]:
    """One case's columns; :class:`CaseNotFoundError` when absent."""
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        if case is None:
            raise CaseNotFoundError(f"no case {case_id}")
        return _case_dict(case)


# --------------------------------------------------------------------------- listing


def list_cases(
    engine: Engine,
    *,
    state: CaseState | str | None = None,
    campaign: int | None = None,
    department: str | None = None,
) -> pd.DataFrame:
    """The review queue as a table sorted by ``case_id``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CASE_COLUMNS` (``reasons`` a list of codes, ``priority`` EUR at stake,
        ``deadline`` a date) plus ``department``, ``pacage``, ``outcome``, ``version``.
    """
    t = table_of(Case)
    stmt = select(
        *(t.c[c] for c in CASE_COLUMNS), t.c.department, t.c.pacage, t.c.outcome, t.c.version
    ).order_by(t.c.case_id)
    if state is not None:
        try:
            state = CaseState(state)
        except ValueError:
            raise ConfigError(
                f"unknown case state {state!r}: use one of {', '.join(s.value for s in CaseState)}"
            ) from None
        stmt = stmt.where(t.c.state == state.value)
    if campaign is not None:
        stmt = stmt.where(t.c.campaign == int(campaign))
    if department is not None:
        stmt = stmt.where(t.c.department == str(department))
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseError(
            f"cannot read the cases of {engine.url.render_as_string(hide_password=True)} ({exc.orig}); "
            "if the database is new, run `s3tr db upgrade` with the same --db/--workdir"
        ) from exc
    return pd.DataFrame(rows, columns=[*CASE_COLUMNS, "department", "pacage", "outcome", "version"])


def current_decisions(engine: Engine, *, campaign: int | None = None) -> pd.DataFrame:
    """The current decision of every (campaign, parcel, control), sorted by parcel then control.

    Returns
    -------
    pandas.DataFrame
        ``campaign, id_parcel, control, flag, reasons`` (list of codes), ``department, pacage,
        surf_parc, ruleset_version, run_id``.
    """
    t = table_of(Decision)
    cols = ["campaign", "id_parcel", "control", "flag", "reasons", "department", "pacage", "surf_parc"]
    cols += ["ruleset_version", "run_id"]
    stmt = select(*(t.c[c] for c in cols)).where(t.c.is_current).order_by(t.c.id_parcel, t.c.control)
    if campaign is not None:
        stmt = stmt.where(t.c.campaign == int(campaign))
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseError(
            f"cannot read the decisions of {engine.url.render_as_string(hide_password=True)} ({exc.orig}); "
            "if the database is new, run `s3tr db upgrade` with the same --db/--workdir"
        ) from exc
    return pd.DataFrame(rows, columns=cols)


def count_rows(engine: Engine, table: str) -> int:
    """Number of rows of a review table (for summaries and tests)."""
    from s3tr.review.models import Base

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Base.metadata.tables[table])).scalar_one())
