"""Farmer endpoints (``/api/v1/me/...``): my parcels and flags, my photo requests, photo upload,
corrections (droit à l'erreur).

A farmer sees only the parcels, cases and requests of their own PACAGE; anything else is 404.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from s3tr.api.deps import (
    ApiSettings,
    Clock,
    CurrentFarmer,
    CurrentUser,
    EngineDep,
    Lang,
    SessionDep,
    SettingsDep,
)
from s3tr.api.problems import ApiProblem, problem_responses
from s3tr.api.schemas import CorrectionIn, CorrectionOut, Me, ParcelOut, PhotoRequestOut, UploadOut
from s3tr.api.uploads import read_upload, remove_stored, store_photo
from s3tr.api.views import (
    aware,
    farmer_declarations,
    flags_for,
    latest_declaration,
    outline_wgs84,
    parcel_out,
    photo_out,
    photo_requests_of,
    request_in_pacage,
)
from s3tr.decide.rules import load_ruleset
from s3tr.errors import ConfigError
from s3tr.photos import PhotoRejected, check_photo, read_photo
from s3tr.review.cases import _audit
from s3tr.review.database import session_scope
from s3tr.review.declarations import record_correction
from s3tr.review.models import AuditLog, Case, Photo, PhotoRequest
from s3tr.review.requests import DuplicatePhotoError, record_photo
from s3tr.review.rescore import rescore_parcel
from s3tr.review.users import TokenUser

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["farmer"])

_KEY = re.compile(r"^[\x21-\x7e]{8,128}$")
_AUTH = problem_responses(401, 403, 404, 422)


@router.get("/me", response_model=Me, tags=["account"], responses=problem_responses(401, 422))
async def me(user: CurrentUser) -> Me:
    """Who the bearer token belongs to (any role)."""
    return Me(
        user_id=user.user_id,
        username=user.username,
        role=user.role,  # type: ignore[arg-type]
        pacage=user.pacage,
        department=user.department,
    )


@router.get("/me/parcels", response_model=list[ParcelOut], responses=_AUTH)
def my_parcels(
    user: CurrentFarmer,
    session: SessionDep,
    lang: Lang,
    campaign: Annotated[int | None, Query(ge=2000, le=2100, description="Only this campaign.")] = None,
) -> list[ParcelOut]:
    """My declared parcels with their current flags and plain-language reasons."""
    decls = farmer_declarations(session, user.pacage or "")
    if campaign is not None:
        decls = [d for d in decls if d.campaign == campaign]
    flags = flags_for(session, [(d.campaign, d.id_parcel) for d in decls], lang)
    return [parcel_out(d, flags[(d.campaign, d.id_parcel)]) for d in decls]


_ParcelId = Annotated[str, PathParam(min_length=1, max_length=64, description="The parcel's id (id_parcel).")]


@router.get("/me/parcels/{id_parcel}", response_model=ParcelOut, responses=_AUTH)
def my_parcel(
    id_parcel: _ParcelId,
    user: CurrentFarmer,
    session: SessionDep,
    lang: Lang,
    campaign: Annotated[
        int | None, Query(ge=2000, le=2100, description="Campaign (default: latest).")
    ] = None,
) -> ParcelOut:
    """One of my parcels with its current flags."""
    decl = latest_declaration(session, id_parcel, pacage=user.pacage, campaign=campaign)
    if decl is None:
        raise ApiProblem(404, f"no parcel {id_parcel} in your declarations")
    flags = flags_for(session, [(decl.campaign, decl.id_parcel)], lang)
    return parcel_out(decl, flags[(decl.campaign, decl.id_parcel)])


_REQUESTS_JSON = TypeAdapter(list[PhotoRequestOut])


@router.get("/me/photo-requests", response_model=list[PhotoRequestOut], responses=_AUTH)
async def my_photo_requests(
    user: CurrentFarmer,
    request: Request,
    lang: Lang,
    state: Annotated[
        str | None, Query(pattern="^(pending|fulfilled|expired|cancelled)$", description="Only this state.")
    ] = None,
) -> Response:
    """My photo requests: where to stand, which way to point, what to show, until when."""
    # async, on a plain connection: the farmers' busiest call is one indexed read-only query
    # (well under a millisecond), cheaper than the thread-pool hop and ORM session around it
    engine: Engine = request.app.state.engine
    with engine.connect() as conn:
        found = photo_requests_of(conn, user.pacage or "", lang, state=state)
    # the models are built (and so validated) here: serialising them straight to JSON skips
    # FastAPI's second validation pass of the response, the costliest step of this listing
    return Response(_REQUESTS_JSON.dump_json(found), media_type="application/json")


_RequestId = Annotated[int, PathParam(ge=1, le=2**62, description="The photo request's id.")]


@router.get("/me/photo-requests/{request_id}", response_model=PhotoRequestOut, responses=_AUTH)
def my_photo_request(
    request_id: _RequestId, user: CurrentFarmer, session: SessionDep, lang: Lang
) -> PhotoRequestOut:
    """One of my photo requests, with the photos already sent."""
    found = photo_requests_of(session, user.pacage or "", lang, request_id=request_id)
    if not found:
        raise ApiProblem(404, f"no photo request {request_id} for you")
    return found[0]


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The JPEG photo."},
                        "view": {
                            "type": "string",
                            "enum": ["general", "closeup"],
                            "description": "Which shot this is.",
                        },
                    },
                }
            }
        },
    }
}


def _idem_lookup(session: Session, key: str, user_id: int) -> Photo | None:
    """The photo this farmer already stored under this Idempotency-Key (an indexed lookup)."""
    return session.scalars(
        select(Photo).where(Photo.uploaded_by == user_id, Photo.idempotency_key == key)
    ).first()


def _replay(earlier: Photo, request_id: int, sha256: str) -> tuple[Photo, bool]:
    """The first photo of a retry; 409 when the key was used for another photo or request."""
    if earlier.sha256 != sha256 or earlier.request_id != request_id:
        raise ApiProblem(
            409,
            "this Idempotency-Key was already used for a different photo: use a new key per photo",
            code="idempotency-key-reused",
        )
    return earlier, True


def _check_request_scope(sessions: sessionmaker[Session], request_id: int, user: TokenUser) -> None:
    """404 before reading the body when the request is not the farmer's."""
    with sessions() as session:
        if request_in_pacage(session, request_id, user.pacage or "") is None:
            raise ApiProblem(404, f"no photo request {request_id} for you")


def _discard_unreferenced(sessions: sessionmaker[Session], path: Path, sha256: str) -> None:
    """Remove a photo file unless a committed photo row refers to it (nothing half-stored)."""
    with sessions() as session:
        if session.scalar(select(Photo.id).where(Photo.sha256 == sha256)) is None:
            remove_stored(path)


def _deadline(req: PhotoRequest) -> Any:
    if req.deadline is not None:
        return req.deadline
    return aware(req.created_at) + timedelta(days=365)  # type: ignore[operator]


def _process_upload(
    engine: Engine,
    sessions: sessionmaker[Session],
    settings: ApiSettings,
    photos_root: Path,
    user: TokenUser,
    request_id: int,
    key: str,
    data: bytes,
    view: str | None,
    now: datetime,
) -> tuple[Photo, bool]:
    with sessions() as session:
        found = request_in_pacage(session, request_id, user.pacage or "")
        if found is None:
            raise ApiProblem(404, f"no photo request {request_id} for you")
        req, case = found
        sha256 = hashlib.sha256(data).hexdigest()
        earlier = _idem_lookup(session, key, user.user_id)
        if earlier is not None:
            return _replay(earlier, request_id, sha256)
        if req.state not in ("pending", "fulfilled"):
            raise ApiProblem(
                409,
                f"photo request {request_id} is {req.state}: photos are no longer accepted",
                code="photo-request-closed",
            )
        decl = latest_declaration(session, case.id_parcel, campaign=case.campaign)
        outline = outline_wgs84(decl)
        # the farm's earlier photos (near-duplicates), and this very image sent by anyone
        known = session.execute(
            select(Photo.sha256, Photo.phash)
            .join(Case, Case.case_id == Photo.case_id)
            .where(Case.pacage == user.pacage)
            .union(select(Photo.sha256, Photo.phash).where(Photo.sha256 == sha256))
        ).all()
    try:
        info = read_photo(data, max_bytes=settings.max_upload_bytes)
    except PhotoRejected as exc:
        status = {"too_large": 413, "unsupported_type": 415}.get(exc.code, 422)
        raise ApiProblem(
            status, exc.message_en, code=f"photo-{exc.code.replace('_', '-')}", detail_fr=exc.message_fr
        ) from None
    if outline is None:
        raise ApiProblem(409, f"parcel {case.id_parcel} has no stored outline: the photo cannot be checked")
    target = None if req.target_lon is None or req.target_lat is None else (req.target_lon, req.target_lat)
    results = check_photo(
        info,
        parcel_geometry_wgs84=outline,
        target_point=target,
        requested_at=aware(req.created_at),  # type: ignore[arg-type]
        deadline=_deadline(req),
        now=now,
        expected_heading_deg=req.heading_deg,
        heading_required=req.heading_deg is not None,
        position_buffer_m=settings.position_buffer_m,
        near_target_m=settings.near_target_m,
        heading_tolerance_deg=settings.heading_tolerance_deg,
        known_hashes=[(sha, ph or "") for sha, ph in known],
    )
    checks = {
        "accepted": all(r.passed is not False for r in results),
        "results": [r.as_dict() for r in results],
    }
    path, _created = store_photo(photos_root, info.sha256, data)
    device = {
        "size_bytes": info.size_bytes,
        "width": info.width,
        "height": info.height,
        "camera_make": info.camera_make,
        "camera_model": info.camera_model,
        "captured_at_source": info.captured_at_source,
    }
    try:
        done = record_photo(
            engine,
            request_id,
            sha256=info.sha256,
            storage_path=str(path.relative_to(photos_root.parent)),
            actor=user.username,
            view=view,
            lon=info.lon,
            lat=info.lat,
            heading_deg=info.heading_deg,
            taken_at=info.captured_at,
            device=device,
            checks=checks,
            now=now,
            idempotency_key=key,
            uploaded_by=user.user_id,
            phash=info.phash or None,
            allow_same_image=True,  # an exact duplicate is stored with its failed check
        )
    except DuplicatePhotoError:
        # a concurrent retry with the same key stored its photo first (the unique index on
        # the uploader and key refused this one): answer with that photo
        with sessions() as session:
            earlier = _idem_lookup(session, key, user.user_id)
        if earlier is not None and earlier.sha256 == info.sha256 and earlier.request_id == request_id:
            return earlier, True
        _discard_unreferenced(sessions, path, info.sha256)
        if earlier is not None:
            _replay(earlier, request_id, info.sha256)  # the key was used for another photo: 409
        raise
    except BaseException:
        _discard_unreferenced(sessions, path, info.sha256)
        raise
    # the file may have been removed by a concurrent upload of the same bytes that failed
    store_photo(photos_root, info.sha256, data)
    # record_photo audits the case transition (first photo only): every stored photo gets its line
    with session_scope(engine, write=True) as session:
        session.add(
            AuditLog(
                **_audit(
                    now,
                    user.username,
                    "photo_received",
                    "photo",
                    done["photo_id"],
                    case.campaign,
                    case.id_parcel,
                    case.control,
                    None,
                    {
                        "request_id": request_id,
                        "case_id": case.case_id,
                        "sha256": info.sha256,
                        "accepted": checks["accepted"],
                        "failed_checks": [r.name for r in results if r.passed is False],
                    },
                )
            )
        )
    with sessions() as session:
        photo = session.get(Photo, done["photo_id"])
        assert photo is not None
        return photo, False


@router.post(
    "/me/photo-requests/{request_id}/photos",
    response_model=UploadOut,
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {
            "description": "A retry with a known Idempotency-Key: the photo stored the first time.",
            "model": UploadOut,
        },
        **problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
    },
)
async def upload_photo(
    request_id: _RequestId,
    request: Request,
    response: Response,
    user: CurrentFarmer,
    engine: EngineDep,
    settings: SettingsDep,
    lang: Lang,
    now: Clock,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="A unique key per photo (8-128 printable characters); a retry sends the same key."
        ),
    ] = None,
) -> UploadOut:
    """Upload a geotagged JPEG for a photo request; the checks run at once.

    A photo that fails a check is kept (the instructor sees it with the failed checks); the
    answer lists every named check. A retry with the same ``Idempotency-Key`` returns the photo
    stored the first time (200) and stores nothing new.
    """
    if idempotency_key is None:
        raise ApiProblem(
            400,
            "the Idempotency-Key header is required (a unique key per photo, reused on retries)",
            code="idempotency-key-missing",
        )
    if not _KEY.match(idempotency_key):
        raise ApiProblem(
            400,
            "the Idempotency-Key must be 8 to 128 printable ASCII characters without spaces",
            code="idempotency-key-invalid",
        )
    workdir: Path | None = request.app.state.workdir
    if workdir is None:
        raise ApiProblem(503, "this server has no workdir to store photos; start it with --workdir")
    await run_in_threadpool(_check_request_scope, request.app.state.sessions, request_id, user)
    upload = await read_upload(request, max_bytes=settings.max_upload_bytes)
    view = upload.fields.get("view")
    if view is not None and view not in ("general", "closeup"):
        raise ApiProblem(422, f"view must be 'general' or 'closeup', got {view[:20]!r}")
    photo, replayed = await run_in_threadpool(
        _process_upload,
        engine,
        request.app.state.sessions,
        settings,
        workdir / "photos",
        user,
        request_id,
        idempotency_key,
        upload.data,
        view,
        now,
    )
    if replayed:
        response.status_code = 200
    return UploadOut(**photo_out(photo, lang).model_dump(), replayed=replayed)


@router.post(
    "/me/parcels/{id_parcel}/corrections",
    response_model=CorrectionOut,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
def correct_parcel(
    id_parcel: _ParcelId,
    body: CorrectionIn,
    request: Request,
    user: CurrentFarmer,
    engine: EngineDep,
    session: SessionDep,
    lang: Lang,
    now: Clock,
    campaign: Annotated[
        int | None, Query(ge=2000, le=2100, description="Campaign (default: latest).")
    ] = None,
) -> CorrectionOut:
    """Correct the declared crop of one of my parcels (droit à l'erreur); the parcel is re-scored at once.

    Allowed only inside the campaign's correction window (409 outside). The new declaration
    version is decided again from the parcel's stored series; its review cases are updated or
    cancelled.
    """
    decl = latest_declaration(session, id_parcel, pacage=user.pacage, campaign=campaign)
    if decl is None:
        raise ApiProblem(404, f"no parcel {id_parcel} in your declarations")
    session.close()
    try:
        window = load_ruleset(decl.campaign).correction_window
    except ConfigError:
        raise ApiProblem(409, f"campaign {decl.campaign} has no rule set: corrections are closed") from None
    today = now.date()
    if not window.contains(today):
        raise ApiProblem(
            409,
            f"corrections of campaign {decl.campaign} are accepted from {window.start} to {window.end}; "
            f"today is {today}: contact your DDT",
            code="correction-window-closed",
            detail_fr=f"Les corrections de la campagne {decl.campaign} sont acceptées du {window.start} au "
            f"{window.end} ; nous sommes le {today} : contactez votre DDT.",
        )
    code = body.code_cultu.upper()
    if code == decl.code_cultu and body.code_group == decl.code_group:
        raise ApiProblem(
            422,
            f"parcel {id_parcel} is already declared as {code} (group {body.code_group})",
            code="nothing-to-correct",
        )
    result = record_correction(
        engine,
        campaign=decl.campaign,
        id_parcel=id_parcel,
        changes={"code_cultu": code, "code_group": body.code_group},
        submitted_by=user.username,
        reason=body.reason,
        now=now,
    )
    workdir: Path | None = request.app.state.workdir
    if workdir is not None:
        rescore_parcel(
            engine,
            workdir=workdir,
            campaign=decl.campaign,
            id_parcel=id_parcel,
            crop_model=request.app.state.crop_model,
            actor=user.username,
            now=now,
        )
    else:
        logger.warning("no workdir: parcel %s corrected but not re-scored", id_parcel)
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as fresh:
        flags = flags_for(fresh, [(decl.campaign, id_parcel)], lang)[(decl.campaign, id_parcel)]
    return CorrectionOut(
        id_parcel=id_parcel,
        campaign=decl.campaign,
        declaration_version=result.version,
        within_window=result.within_window,
        retired_controls=list(result.retired_controls),
        cases_cancelled=result.cases_cancelled,
        flags=flags,
    )
