"""Photo requests and received photos, each moving its case through the state machine atomically.

A photo request names a target point, the direction to point the camera and what to show
(Télépac Géophotos asks for a general view and a close-up per spot) and a deadline; creating it
moves the case to ``photo_requested``. A received photo (its checks computed by
:mod:`s3tr.photos`) fulfils the request and moves the case to ``photo_received``. Both run in
one transaction with the case's optimistic lock, so a concurrent change gives
:class:`~s3tr.review.cases.CaseConflictError` and nothing is half-written.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from s3tr.errors import S3trError
from s3tr.notify.outbox import Kind, enqueue
from s3tr.review.cases import CaseConflictError, _transition
from s3tr.review.database import session_scope
from s3tr.review.models import Case, CaseState, Photo, PhotoRequest

__all__ = ["DuplicatePhotoError", "PhotoRequestError", "record_photo", "request_photos"]


class PhotoRequestError(S3trError, ValueError):
    """The photo request is unknown, closed, or does not belong to the case."""


class DuplicatePhotoError(S3trError, ValueError):
    """The same image (same SHA-256) was already received: a re-used photo is refused."""


def request_photos(
    engine: Engine,
    case_id: int,
    *,
    actor: str,
    instructions: str,
    deadline: date | None = None,
    target_lon: float | None = None,
    target_lat: float | None = None,
    heading_deg: float | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Create a photo request and move the case to ``photo_requested`` (one transaction).

    Coordinates are WGS84 degrees (EPSG:4326); ``heading_deg`` is the camera direction, degrees
    clockwise from north.

    Returns
    -------
    dict
        ``request_id`` and the case after the transition (``case``).
    """
    when = now or datetime.now(UTC)
    try:
        with session_scope(engine, write=True) as session:
            case = _transition(
                session,
                case_id,
                CaseState.PHOTO_REQUESTED,
                actor=actor,
                expected_version=expected_version,
                outcome=None,
                note=instructions,
                now=when,
            )
            req = PhotoRequest(
                case_id=case_id,
                target_lon=target_lon,
                target_lat=target_lat,
                heading_deg=heading_deg,
                instructions=instructions,
                deadline=deadline,
                state="pending",
                created_at=when,
            )
            session.add(req)
            session.flush()
            if case["pacage"]:  # tell the farmer, in this very transaction (outbox)
                enqueue(
                    session,
                    Kind.PHOTO_REQUESTED,
                    pacage=case["pacage"],
                    department=case["department"],
                    campaign=case["campaign"],
                    id_parcel=case["id_parcel"],
                    case_id=case_id,
                    request_id=req.id,
                    payload={"control": case["control"], "instructions": instructions, "deadline": deadline},
                    now=when,
                )
            return {"request_id": req.id, "case": case}
    except StaleDataError as exc:
        raise CaseConflictError(f"case {case_id} changed meanwhile; reload it and try again") from exc


def record_photo(
    engine: Engine,
    request_id: int,
    *,
    sha256: str,
    storage_path: str,
    actor: str,
    view: str | None = None,
    lon: float | None = None,
    lat: float | None = None,
    heading_deg: float | None = None,
    taken_at: datetime | None = None,
    device: dict[str, Any] | None = None,
    checks: dict[str, Any] | None = None,
    now: datetime | None = None,
    idempotency_key: str | None = None,
    uploaded_by: int | None = None,
    phash: str | None = None,
    allow_same_image: bool = False,
) -> dict[str, Any]:
    """Store a received photo, fulfil its request and move the case to ``photo_received``.

    ``allow_same_image`` stores an image already received (the API does, with a failed
    duplicate check in ``checks``); ``(uploaded_by, idempotency_key)`` is unique.

    A second photo for the same request (the close-up after the general view) is stored too;
    the case moves only on the first.

    Raises
    ------
    PhotoRequestError
        Unknown request, or a request that is no longer pending or fulfilled.
    DuplicatePhotoError
        An image with the same SHA-256 was already received (unless ``allow_same_image``), or
        the uploader's ``idempotency_key`` was stored meanwhile (a concurrent retry).
    """
    when = now or datetime.now(UTC)
    try:
        with session_scope(engine, write=True) as session:
            req = session.get(PhotoRequest, request_id)
            if req is None:
                raise PhotoRequestError(f"no photo request {request_id}")
            if req.state not in ("pending", "fulfilled"):
                raise PhotoRequestError(
                    f"photo request {request_id} is {req.state}: photos are no longer accepted"
                )
            if not allow_same_image and session.scalar(select(Photo.id).where(Photo.sha256 == sha256)):
                raise DuplicatePhotoError(f"photo {sha256[:12]}… was already received (re-used image)")
            photo = Photo(
                request_id=request_id,
                case_id=req.case_id,
                sha256=sha256,
                view=view,
                lon=lon,
                lat=lat,
                heading_deg=heading_deg,
                taken_at=taken_at,
                received_at=when,
                device=device or {},
                checks=checks or {},
                storage_path=storage_path,
                idempotency_key=idempotency_key,
                uploaded_by=uploaded_by,
                phash=phash,
            )
            session.add(photo)
            case = None
            if req.state == "pending":
                req.state, req.fulfilled_at = "fulfilled", when
                case = _transition(
                    session,
                    req.case_id,
                    CaseState.PHOTO_RECEIVED,
                    actor=actor,
                    expected_version=None,
                    outcome=None,
                    note=f"photo {sha256[:12]}",
                    now=when,
                )
            session.flush()
            owner = session.get(Case, req.case_id)
            if checks and owner is not None and owner.pacage:  # the checks' verdict goes to the farmer
                enqueue(
                    session,
                    Kind.PHOTO_CHECKED,
                    pacage=owner.pacage,
                    department=owner.department,
                    campaign=owner.campaign,
                    id_parcel=owner.id_parcel,
                    case_id=owner.case_id,
                    request_id=request_id,
                    payload={
                        "control": owner.control,
                        "photo_id": photo.id,
                        "accepted": bool(checks.get("accepted", True)),
                        "failed_checks": [
                            r.get("name") for r in checks.get("results", []) if r.get("passed") is False
                        ],
                        "deadline": req.deadline,
                    },
                    now=when,
                )
            return {"photo_id": photo.id, "case": case}
    except StaleDataError as exc:
        raise CaseConflictError(f"the case of request {request_id} changed meanwhile; try again") from exc
    except IntegrityError as exc:  # a concurrent upload of the same image won the unique constraint
        raise DuplicatePhotoError(f"photo {sha256[:12]}… was already received (re-used image)") from exc
