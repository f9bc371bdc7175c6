"""Instructor endpoints (``/api/v1/cases...``): the queue, a case with its evidence, photo
requests, decisions, assignment, reopening and field visits.

An instructor sees only the cases of their department; anything else is 404. Every change is
optimistic-locked (``expected_version`` in the body or ``If-Match: "<version>"``; a stale
version is a 409) and written to the audit log.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pyproj import Transformer
from shapely import wkt as shapely_wkt
from shapely.geometry import Point
from sqlalchemy import func, or_, select

from s3tr.api.deps import Clock, CurrentInstructor, EngineDep, Lang, SessionDep, SettingsDep
from s3tr.api.problems import ApiProblem, problem_responses
from s3tr.api.schemas import (
    AssignIn,
    AuditEntry,
    CaseDetail,
    CaseList,
    CaseOut,
    DecideIn,
    DecisionOut,
    FieldVisitIn,
    FieldVisitOut,
    PhotoRequestIn,
    PhotoRequestOut,
    ReopenIn,
    SeriesPoint,
)
from s3tr.api.views import (
    aware,
    case_commune,
    case_in_department,
    geojson,
    in_commune,
    latest_declaration,
    outline_wgs84,
    photo_out,
    request_out,
)
from s3tr.review.cases import CaseConflictError, _audit, transition_case
from s3tr.review.database import session_scope
from s3tr.review.models import AuditLog, Case, CaseState, Decision, Photo, PhotoRequest, User
from s3tr.review.requests import request_photos
from s3tr.review.rescore import parcel_series

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/cases", tags=["instructor"])

_CaseId = Annotated[int, PathParam(ge=1, le=2**62, description="The case id.")]
_IfMatch = Annotated[
    str | None,
    Header(description='The case version seen, as an entity tag (e.g. "3"); same as expected_version.'),
]
_ETAG = re.compile(r'^(?:W/)?"?(\d{1,12})"?$')


def _case_out(case: Case, commune: str | None = None) -> CaseOut:
    return CaseOut(
        case_id=case.case_id,
        campaign=case.campaign,
        id_parcel=case.id_parcel,
        control=case.control,
        state=case.state,
        flag=case.flag,
        reasons=list(case.reasons or []),
        outcome=case.outcome,
        outcome_note=case.outcome_note,
        priority=float(case.priority),
        deadline=case.deadline,
        department=case.department,
        commune=commune,
        pacage=case.pacage,
        surf_parc=case.surf_parc,
        assigned_to=case.assigned_to,
        version=case.version,
        created_at=aware(case.created_at),  # type: ignore[arg-type]
        updated_at=aware(case.updated_at),  # type: ignore[arg-type]
        closed_at=aware(case.closed_at),
    )


def _expected(body_version: int | None, if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return body_version
    m = _ETAG.match(if_match.strip())
    if m is None:
        raise ApiProblem(
            400, f'If-Match must be the case version as an entity tag, e.g. "3" (got {if_match[:40]!r})'
        )
    version = int(m.group(1))
    if body_version is not None and body_version != version:
        raise ApiProblem(400, f"If-Match ({version}) and expected_version ({body_version}) disagree")
    return version


def _scoped(session: Any, case_id: int, user: Any) -> Case:
    case = case_in_department(session, case_id, user.department)
    if case is None:
        raise ApiProblem(404, f"no case {case_id} in your department")
    return case


def _reply(response: Response, case: dict[str, Any] | Case, session: Any) -> CaseOut:
    cid = case["case_id"] if isinstance(case, dict) else case.case_id
    session.expire_all()
    fresh, commune = session.execute(select(Case, case_commune()).where(Case.case_id == cid)).one()
    response.headers["ETag"] = f'"{fresh.version}"'
    return _case_out(fresh, commune)


@router.get("", response_model=CaseList, responses=problem_responses(401, 403, 422))
def queue(
    user: CurrentInstructor,
    session: SessionDep,
    state: Annotated[CaseState | None, Query(description="Only cases in this state.")] = None,
    control: Annotated[str | None, Query(max_length=32, description="Only this control.")] = None,
    commune: Annotated[
        str | None, Query(max_length=5, description="Only parcels of this commune (INSEE code).")
    ] = None,
    deadline_before: Annotated[
        date | None, Query(description="Only cases due on or before this date.")
    ] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or closed (false) cases.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Number of cases to skip.")] = 0,
) -> CaseList:
    """The review queue of my department, highest priority (EUR at stake) first."""
    cond = [Case.department == user.department]
    if state is not None:
        cond.append(Case.state == state.value)
    if control is not None:
        cond.append(Case.control == control)
    if commune is not None:
        cond.append(in_commune(commune))
    if deadline_before is not None:
        cond.append(Case.deadline <= deadline_before)
    if active is not None:
        actives = [CaseState.OPEN.value, CaseState.PHOTO_REQUESTED.value, CaseState.PHOTO_RECEIVED.value]
        cond.append(Case.state.in_(actives) if active else Case.state.not_in(actives))
    total = session.scalar(select(func.count()).select_from(Case).where(*cond)) or 0
    rows = session.execute(
        select(Case, case_commune())
        .where(*cond)
        .order_by(Case.priority.desc(), Case.case_id)
        .limit(limit)
        .offset(offset)
    ).all()
    items = [_case_out(c, m) for c, m in rows]
    return CaseList(total=int(total), limit=limit, offset=offset, items=items)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, 5)


def _field_visit(row: AuditLog) -> FieldVisitOut:
    d = row.details or {}
    return FieldVisitOut(
        id=row.id,
        case_id=int(row.entity_id or 0),
        visited_on=date.fromisoformat(d["visited_on"]),
        observed_crop=d.get("observed_crop"),
        activity_seen=d.get("activity_seen"),
        comment=d.get("comment", ""),
        recorded_by=row.actor,
        recorded_at=aware(row.at),  # type: ignore[arg-type]
    )


@router.get("/{case_id}", response_model=CaseDetail, responses=problem_responses(401, 403, 404, 422))
def case_detail(
    case_id: _CaseId,
    request: Request,
    response: Response,
    user: CurrentInstructor,
    session: SessionDep,
    lang: Lang,
) -> CaseDetail:
    """A case with its evidence: series, markers, decisions history, photos and checks, requests, audit."""
    case = _scoped(session, case_id, user)
    decl = latest_declaration(session, case.id_parcel, campaign=case.campaign)
    decisions = session.scalars(
        select(Decision)
        .where(
            Decision.campaign == case.campaign,
            Decision.id_parcel == case.id_parcel,
            Decision.control == case.control,
        )
        .order_by(Decision.revision)
    ).all()
    current = next((d for d in decisions if d.id == case.decision_id), None)
    workdir: Path | None = request.app.state.workdir
    series: list[SeriesPoint] = []
    if workdir is not None:
        table = parcel_series(workdir, case.id_parcel)
        for rec in table.to_dict("records"):
            series.append(
                SeriesPoint(
                    date=date.fromisoformat(str(rec["date"])[:10]),
                    valid=bool(rec.get("valid")),
                    ndvi=_num(rec.get("ndvi")),
                    ndvi_std=_num(rec.get("ndvi_std")),
                    ndmi=_num(rec.get("ndmi")),
                    ndwi=_num(rec.get("ndwi")),
                    bsi=_num(rec.get("bsi")),
                    ndti=_num(rec.get("ndti")),
                    valid_fraction=_num(rec.get("valid_fraction")),
                )
            )
    requests = session.scalars(
        select(PhotoRequest).where(PhotoRequest.case_id == case.case_id).order_by(PhotoRequest.id)
    ).all()
    photos = session.scalars(select(Photo).where(Photo.case_id == case.case_id).order_by(Photo.id)).all()
    audit = session.scalars(
        select(AuditLog)
        .where(
            or_(
                (AuditLog.entity == "case") & (AuditLog.entity_id == str(case.case_id)),
                (AuditLog.campaign == case.campaign)
                & (AuditLog.id_parcel == case.id_parcel)
                & (AuditLog.entity == "declaration"),
                (AuditLog.entity == "photo") & (AuditLog.entity_id.in_([str(p.id) for p in photos])),
            )
        )
        .order_by(AuditLog.id)
    ).all()
    visits = [_field_visit(a) for a in audit if a.action == "field_visit"]
    base = _case_out(case, decl.commune if decl is not None else None).model_dump()
    response.headers["ETag"] = f'"{case.version}"'
    return CaseDetail(
        **base,
        outline=geojson(outline_wgs84(decl)),
        series=series,
        evidence=dict(current.evidence or {}) if current is not None else {},
        decisions=[
            DecisionOut(
                id=d.id,
                control=d.control,
                revision=d.revision,
                is_current=d.is_current,
                flag=d.flag,
                reasons=list(d.reasons or []),
                evidence=dict(d.evidence or {}),
                explanation=d.explanation_en if lang == "en" else d.explanation_fr,
                ruleset_version=d.ruleset_version,
                run_id=d.run_id,
                created_at=aware(d.created_at),  # type: ignore[arg-type]
            )
            for d in decisions
        ],
        # the case's photos are loaded above: grouped here rather than queried once per request
        photo_requests=[
            request_out(r, case, decl, lang, session, photos=[p for p in photos if p.request_id == r.id])
            for r in requests
        ],
        photos=[photo_out(p, lang) for p in photos],
        field_visits=visits,
        audit=[
            AuditEntry(
                at=aware(a.at),  # type: ignore[arg-type]
                actor=a.actor,
                action=a.action,
                entity=a.entity,
                entity_id=a.entity_id,
                details=dict(a.details or {}),
            )
            for a in audit
        ],
    )


@router.get(
    "/{case_id}/photos/{photo_id}/content",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The photo as received."},
        **problem_responses(401, 403, 404, 422),
    },
)
def photo_content(
    case_id: _CaseId,
    photo_id: Annotated[int, PathParam(ge=1, le=2**62, description="The photo's id.")],
    request: Request,
    user: CurrentInstructor,
    session: SessionDep,
) -> FileResponse:
    """The bytes of a photo of one of my department's cases."""
    case = _scoped(session, case_id, user)
    photo = session.get(Photo, photo_id)
    workdir: Path | None = request.app.state.workdir
    if photo is None or photo.case_id != case.case_id or workdir is None:
        raise ApiProblem(404, f"no photo {photo_id} in case {case_id}")
    path = workdir / photo.storage_path
    if not path.is_file():
        raise ApiProblem(404, f"the file of photo {photo_id} is missing from the store")
    return FileResponse(path, media_type="image/jpeg")


def _meters_from(decl: Any, lon: float, lat: float) -> float:
    """Distance (metres) from a WGS84 point to the parcel, in the parcel's projected CRS."""
    geom = shapely_wkt.loads(decl.geometry_wkt)
    if not decl.crs or decl.crs.upper() in ("EPSG:4326", "OGC:CRS84"):
        return geom.distance(Point(lon, lat)) * 111_000.0
    x, y = Transformer.from_crs("EPSG:4326", decl.crs, always_xy=True).transform(lon, lat)
    d = geom.distance(Point(x, y))
    return float("inf") if math.isnan(d) or math.isinf(d) else float(d)


@router.post(
    "/{case_id}/photo-requests",
    response_model=PhotoRequestOut,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
def request_photo(
    case_id: _CaseId,
    body: PhotoRequestIn,
    user: CurrentInstructor,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
    lang: Lang,
    now: Clock,
    if_match: _IfMatch = None,
) -> PhotoRequestOut:
    """Ask the farmer for geotagged photos of a spot of the parcel (the case moves to photo_requested)."""
    case = _scoped(session, case_id, user)
    expected = _expected(body.expected_version, if_match)
    if body.deadline < now.date():
        raise ApiProblem(422, f"the deadline {body.deadline} is already past", code="deadline-past")
    if (body.target_lon is None) != (body.target_lat is None):
        raise ApiProblem(422, "give both target_lon and target_lat, or neither (a point inside the parcel)")
    decl = latest_declaration(session, case.id_parcel, campaign=case.campaign)
    lon, lat = body.target_lon, body.target_lat
    if decl is not None and decl.geometry_wkt:
        if lon is None or lat is None:
            rep = outline_wgs84(decl).representative_point()  # type: ignore[union-attr]
            lon, lat = round(rep.x, 7), round(rep.y, 7)
        else:
            far = _meters_from(decl, lon, lat)
            if far > settings.target_max_distance_m:
                swapped = (
                    abs(lat) <= 180
                    and abs(lon) <= 90
                    and _meters_from(decl, lat, lon) <= settings.target_max_distance_m
                )
                hint = " — latitude and longitude look swapped" if swapped else ""
                raise ApiProblem(
                    422,
                    f"the target point ({lon}, {lat}) is {far:.0f} m from parcel {case.id_parcel} "
                    f"(at most {settings.target_max_distance_m:.0f} m){hint}; "
                    "send target_lon/target_lat in WGS84 degrees",
                    code="target-lat-lon-swapped" if swapped else "target-too-far",
                )
    session.close()
    done = request_photos(
        engine,
        case_id,
        actor=user.username,
        instructions=body.instructions,
        deadline=body.deadline,
        target_lon=lon,
        target_lat=lat,
        heading_deg=body.heading_deg,
        expected_version=expected,
        now=now,
    )
    with session_scope(engine, write=True) as fresh:
        req = fresh.get(PhotoRequest, done["request_id"])
        case = fresh.get(Case, case_id)
        if req is not None:
            req.created_by = user.user_id
        return request_out(req, case, decl, lang, fresh)  # type: ignore[arg-type]


@router.post(
    "/{case_id}/decision", response_model=CaseOut, responses=problem_responses(400, 401, 403, 404, 409, 422)
)
def decide_case(
    case_id: _CaseId,
    body: DecideIn,
    response: Response,
    user: CurrentInstructor,
    engine: EngineDep,
    session: SessionDep,
    now: Clock,
    if_match: _IfMatch = None,
) -> CaseOut:
    """Settle a case green or red, with a mandatory comment."""
    _scoped(session, case_id, user)
    expected = _expected(body.expected_version, if_match)
    session.close()
    case = transition_case(
        engine,
        case_id,
        CaseState.DECIDED,
        actor=user.username,
        expected_version=expected,
        outcome=body.outcome,
        note=body.comment.strip(),
        now=now,
    )
    return _reply(response, case, session)


@router.post(
    "/{case_id}/reopen", response_model=CaseOut, responses=problem_responses(400, 401, 403, 404, 409, 422)
)
def reopen_case(
    case_id: _CaseId,
    body: ReopenIn,
    response: Response,
    user: CurrentInstructor,
    engine: EngineDep,
    session: SessionDep,
    now: Clock,
    if_match: _IfMatch = None,
) -> CaseOut:
    """Reopen a decided case (with a comment saying why)."""
    _scoped(session, case_id, user)
    expected = _expected(body.expected_version, if_match)
    session.close()
    case = transition_case(
        engine,
        case_id,
        CaseState.OPEN,
        actor=user.username,
        expected_version=expected,
        note=body.comment,
        now=now,
    )
    return _reply(response, case, session)


@router.post(
    "/{case_id}/assignment", response_model=CaseOut, responses=problem_responses(400, 401, 403, 404, 409, 422)
)
def assign_case(
    case_id: _CaseId,
    body: AssignIn,
    response: Response,
    user: CurrentInstructor,
    engine: EngineDep,
    session: SessionDep,
    now: Clock,
    if_match: _IfMatch = None,
) -> CaseOut:
    """Assign a case to an instructor of my department."""
    _scoped(session, case_id, user)
    expected = _expected(body.expected_version, if_match)
    session.close()
    with session_scope(engine, write=True) as tx:
        case = tx.get(Case, case_id)
        assert case is not None
        target = tx.get(User, body.user_id)
        if (
            target is None
            or target.role != "instructor"
            or not target.active
            or target.department != user.department
        ):
            raise ApiProblem(
                422,
                f"user {body.user_id} is not an active instructor of department {user.department}",
                code="not-an-instructor",
            )
        if expected is not None and case.version != expected:
            raise CaseConflictError(
                f"case {case_id} is at version {case.version}, not {expected}: reload it and try again"
            )
        before = case.assigned_to
        case.assigned_to = body.user_id
        case.updated_at = now
        tx.flush()
        tx.add(
            AuditLog(
                **_audit(
                    now,
                    user.username,
                    "case_assigned",
                    "case",
                    case.case_id,
                    case.campaign,
                    case.id_parcel,
                    case.control,
                    None,
                    {"from": before, "to": body.user_id, "version": case.version},
                )
            )
        )
    return _reply(response, case, session)


@router.post(
    "/{case_id}/field-visits",
    response_model=FieldVisitOut,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
def record_field_visit(
    case_id: _CaseId,
    body: FieldVisitIn,
    user: CurrentInstructor,
    engine: EngineDep,
    session: SessionDep,
    now: Clock,
) -> FieldVisitOut:
    """Record a field visit as evidence of a case (for farmers without a smartphone)."""
    case = _scoped(session, case_id, user)
    if body.visited_on > now.date():
        raise ApiProblem(422, f"visited_on {body.visited_on} is in the future", code="visit-in-future")
    campaign, id_parcel, control = case.campaign, case.id_parcel, case.control
    session.close()
    details = {
        "visited_on": body.visited_on.isoformat(),
        "observed_crop": body.observed_crop,
        "activity_seen": body.activity_seen,
        "comment": body.comment,
    }
    with session_scope(engine, write=True) as tx:
        row = AuditLog(
            **_audit(
                now,
                user.username,
                "field_visit",
                "case",
                case_id,
                campaign,
                id_parcel,
                control,
                None,
                details,
            )
        )
        tx.add(row)
        tx.flush()
        return _field_visit(row)
