"""Versioned declarations and the farmer's corrections (droit à l'erreur).

A declaration is never overwritten: the nightly load adds a version only when a parcel's
declared attributes changed, and a correction adds a version marked ``source="correction"``
with a row in ``corrections`` saying whether it came inside the campaign's correction window.
A correction that removes a control (e.g. PPH corrected to BTH: no more grassland controls)
retires that control's current decision and cancels its active case at once; the caller then
re-scores the parcel (:func:`s3tr.decide.decide`) and syncs the new decisions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, bindparam, func, insert, select, update

from s3tr.decide.controls import controls_for
from s3tr.decide.rules import load_ruleset
from s3tr.errors import S3trError
from s3tr.notify.outbox import Kind, enqueue
from s3tr.review.cases import _ACTIVE, _audit, _chunks, _for_parcels, _with_retries
from s3tr.review.database import refresh_statistics, write_connection
from s3tr.review.models import AuditLog, Case, CaseState, Correction, Decision, Declaration, table_of

__all__ = [
    "DECLARED_FIELDS",
    "CorrectionResult",
    "DeclarationNotFoundError",
    "DeclarationSummary",
    "current_declarations",
    "record_correction",
    "sync_declarations",
]

logger = logging.getLogger(__name__)

DECLARED_FIELDS = ("code_cultu", "code_group", "surf_parc", "pacage", "department")
"""Attributes whose change makes a new declaration version (geometry is stored, not compared)."""


class DeclarationNotFoundError(S3trError, LookupError):
    """No declaration of this parcel in this campaign: load the parcels first."""


@dataclass(frozen=True)
class DeclarationSummary:
    """What :func:`sync_declarations` did."""

    new: int
    changed: int
    unchanged: int


@dataclass(frozen=True)
class CorrectionResult:
    """What :func:`record_correction` did."""

    declaration_id: int
    version: int
    within_window: bool
    retired_controls: tuple[str, ...]
    cases_cancelled: int


def _norm(value: Any) -> Any:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _record(row: dict[str, Any]) -> dict[str, Any]:
    group = _norm(row.get("code_group"))
    return {
        "code_cultu": str(row["code_cultu"]).strip().upper(),
        "code_group": None if group is None else int(group),
        "surf_parc": None if _norm(row.get("surf_parc")) is None else float(_norm(row.get("surf_parc"))),
        "pacage": None if _norm(row.get("pacage")) is None else str(row["pacage"]),
        "department": None if _norm(row.get("department")) is None else str(row["department"]),
    }


def _commune(row: dict[str, Any]) -> str | None:
    """The row's INSEE commune code, or None when absent or not a code (longer than 5 characters: the
    column would refuse it and fail the whole sync; a wrong commune is worse than none)."""
    value = _norm(row.get("commune"))
    code = "" if value is None else str(value).strip()
    return code if 0 < len(code) <= 5 else None


def _latest(conn, campaign: int, parcels: list[str]) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    t = table_of(Declaration)
    latest = (
        select(t.c.id_parcel, func.max(t.c.version).label("v"))
        .where(t.c.campaign == campaign)
        .group_by(t.c.id_parcel)
        .subquery()
    )
    base = select(t.c.id, t.c.id_parcel, t.c.version, *(t.c[f] for f in DECLARED_FIELDS), t.c.commune).join(
        latest, (t.c.id_parcel == latest.c.id_parcel) & (t.c.version == latest.c.v)
    )
    base = base.where(t.c.campaign == campaign)
    rows = []
    for stmt in _for_parcels(conn, base, t.c.id_parcel, parcels):
        rows.extend(conn.execute(stmt).all())
    return pd.DataFrame(rows, columns=["id", "id_parcel", "version", *DECLARED_FIELDS, "commune"])


def sync_declarations(
    engine: Engine,
    parcels: pd.DataFrame,
    *,
    run_id: str,
    campaign: int | None = None,
    now: datetime | None = None,
) -> DeclarationSummary:
    """Store the declared parcels, adding a version only for new or changed parcels.

    Parameters
    ----------
    parcels
        The validated parcels (``id_parcel, code_cultu, code_group, surf_parc, pacage,
        department`` and ``campaign`` unless given); a ``geometry`` column, when present, is
        stored as WKT with the frame's CRS. A ``commune`` column (INSEE code), when present, is
        stored too, on every version of the parcel: a parcel whose commune alone changed is
        updated in place, not versioned.
    """
    when = now or datetime.now(UTC)
    df = pd.DataFrame(parcels).copy()
    if campaign is not None:
        df["campaign"] = campaign
    crs = None
    if "geometry" in df.columns and getattr(parcels, "crs", None) is not None:
        crs = parcels.crs.to_string()[:32]
    df["id_parcel"] = df["id_parcel"].astype(str)
    # Without the column, the stored communes are kept as they are (a file that does not say says nothing).
    has_commune = "commune" in df.columns

    def attempt() -> DeclarationSummary:
        new = changed = unchanged = 0
        with write_connection(engine) as conn:
            for camp, part in df.groupby("campaign"):
                camp = int(camp)
                latest = _latest(conn, camp, sorted(part["id_parcel"].unique()))
                known = {r["id_parcel"]: r for r in latest.to_dict("records")}
                rows, audit, moved = [], [], []
                for rec in part.to_dict("records"):
                    fields = _record(rec)
                    old = known.get(rec["id_parcel"])
                    kept = None if old is None else _norm(old["commune"])
                    commune = _commune(rec) if has_commune else kept
                    if old is not None and commune != kept:
                        # Every version carries the parcel's current commune: the queue filter reads any.
                        moved.append({"_parcel": rec["id_parcel"], "_commune": commune})
                    if old is not None and all(_norm(old[f]) == _norm(fields[f]) for f in DECLARED_FIELDS):
                        unchanged += 1
                        continue
                    version = 1 if old is None else int(old["version"]) + 1
                    new, changed = (new + 1, changed) if old is None else (new, changed + 1)
                    geom = rec.get("geometry")
                    rows.append(
                        {
                            "campaign": camp,
                            "id_parcel": rec["id_parcel"],
                            "version": version,
                            **fields,
                            "commune": commune,
                            "geometry_wkt": None if geom is None else geom.wkt,
                            "crs": crs,
                            "source": "declaration",
                            "created_at": when,
                        }
                    )
                    audit.append(
                        _audit(
                            when,
                            "nightly",
                            "declaration_loaded",
                            "declaration",
                            f"{rec['id_parcel']}@{version}",
                            camp,
                            rec["id_parcel"],
                            None,
                            run_id,
                            {"version": version, **fields},
                        )
                    )
                for chunk in _chunks(rows):
                    conn.execute(insert(table_of(Declaration)), list(chunk))
                if moved:
                    t = table_of(Declaration)
                    stmt = (
                        update(t)
                        .where(t.c.campaign == camp, t.c.id_parcel == bindparam("_parcel"))
                        .values(commune=bindparam("_commune"))
                    )
                    for chunk in _chunks(moved):
                        conn.execute(stmt, list(chunk))
                for chunk in _chunks(audit, 5000):
                    conn.execute(insert(table_of(AuditLog)), list(chunk))
        return DeclarationSummary(new, changed, unchanged)

    summary = _with_retries(attempt, what="sync_declarations")
    logger.info("sync_declarations run %s: %s", run_id, summary)
    refresh_statistics(engine, ["declarations", "audit_log"], rows_written=summary.new + summary.changed)
    return summary


def current_declarations(engine: Engine, campaign: int) -> pd.DataFrame:
    """The latest version of every declaration of a campaign (columns ``id, id_parcel, version`` + fields)."""
    t = table_of(Declaration)
    with engine.connect() as conn:
        parcels = (
            conn.execute(select(t.c.id_parcel).where(t.c.campaign == campaign).distinct()).scalars().all()
        )
        return _latest(conn, campaign, sorted(parcels)).sort_values("id_parcel").reset_index(drop=True)


def record_correction(
    engine: Engine,
    *,
    campaign: int,
    id_parcel: str,
    changes: dict[str, Any],
    submitted_by: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> CorrectionResult:
    """Record a farmer's correction of one declaration as a new version.

    Parameters
    ----------
    changes
        New values of some of :data:`DECLARED_FIELDS` (e.g. ``{"code_cultu": "BTH", "code_group": 1}``).
    submitted_by
        Who corrected (username or PACAGE), for the audit log.

    Returns
    -------
    CorrectionResult
        The new version, whether it came inside the rule set's correction window, and the
        controls it retired (their active cases are cancelled).

    Raises
    ------
    DeclarationNotFoundError
        When the parcel has no declaration in that campaign.
    ValueError
        When ``changes`` names a field that cannot be corrected.
    """
    unknown = set(changes) - set(DECLARED_FIELDS)
    if unknown:
        raise ValueError(f"cannot correct {sorted(unknown)}; correctable fields: {list(DECLARED_FIELDS)}")
    when = now or datetime.now(UTC)
    window = load_ruleset(campaign).correction_window
    within = window.contains(when.date())

    def attempt() -> CorrectionResult:
        with write_connection(engine) as conn:
            latest = _latest(conn, campaign, [str(id_parcel)])
            if latest.empty:
                raise DeclarationNotFoundError(
                    f"parcel {id_parcel} has no declaration in campaign {campaign}: load the parcels first"
                )
            old = latest.iloc[0].to_dict()
            fields = _record({**{f: old[f] for f in DECLARED_FIELDS}, **changes})
            version = int(old["version"]) + 1
            new_id = conn.execute(
                insert(table_of(Declaration))
                .values(
                    campaign=campaign,
                    id_parcel=str(id_parcel),
                    version=version,
                    **fields,
                    commune=_norm(old["commune"]),
                    source="correction",
                    created_at=when,
                )
                .returning(table_of(Declaration).c.id)
            ).scalar_one()
            conn.execute(
                insert(table_of(Correction)).values(
                    campaign=campaign,
                    id_parcel=str(id_parcel),
                    pacage=fields["pacage"],
                    from_declaration_id=int(old["id"]),
                    to_declaration_id=new_id,
                    within_window=within,
                    reason=reason,
                    submitted_by=submitted_by,
                    submitted_at=when,
                )
            )
            before = {c.value for c in controls_for(old["code_cultu"], _norm(old["code_group"]))}
            after = {c.value for c in controls_for(fields["code_cultu"], fields["code_group"])}
            retired = tuple(sorted(before - after))
            cancelled = 0
            dt, ct = table_of(Decision), table_of(Case)
            if retired:
                # the retired controls no longer apply: their verdicts and cases are moot
                conn.execute(
                    update(dt)
                    .where(
                        dt.c.campaign == campaign, dt.c.id_parcel == str(id_parcel), dt.c.control.in_(retired)
                    )
                    .where(dt.c.is_current.is_(True))
                    .values(is_current=False)
                )
                cancelled = conn.execute(
                    update(ct)
                    .where(
                        ct.c.campaign == campaign, ct.c.id_parcel == str(id_parcel), ct.c.control.in_(retired)
                    )
                    .where(ct.c.state.in_(_ACTIVE))
                    .values(
                        state=CaseState.CANCELLED.value,
                        closed_at=when,
                        updated_at=when,
                        version=ct.c.version + 1,
                    )
                ).rowcount
            conn.execute(
                insert(table_of(AuditLog)).values(
                    **_audit(
                        when,
                        submitted_by,
                        "declaration_corrected",
                        "declaration",
                        f"{id_parcel}@{version}",
                        campaign,
                        str(id_parcel),
                        None,
                        None,
                        {
                            "changes": changes,
                            "within_window": within,
                            "retired_controls": list(retired),
                            "cases_cancelled": cancelled,
                            "reason": reason,
                        },
                    )
                )
            )
            if fields["pacage"]:  # acknowledge to the farmer in the same transaction (outbox)
                enqueue(
                    conn,
                    Kind.CORRECTION_ACCEPTED,
                    pacage=fields["pacage"],
                    department=fields.get("department"),
                    campaign=campaign,
                    id_parcel=str(id_parcel),
                    payload={
                        "code_cultu": fields["code_cultu"],
                        "version": version,
                        "within_window": within,
                        "retired_controls": list(retired),
                    },
                    now=when,
                )
            return CorrectionResult(int(new_id), version, within, retired, int(cancelled))

    return _with_retries(attempt, what="record_correction")
