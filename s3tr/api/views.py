"""Read helpers shared by the routes: scoped queries and row -> schema conversions.

Every lookup takes the caller's scope (a PACAGE or a department) and answers ``None`` for
rows outside it, so the routes answer 404 alike for "absent" and "not yours".
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import shapely
from pyproj import Transformer
from shapely import wkt as shapely_wkt
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, and_, bindparam, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from s3tr.api.schemas import (
    CheckOut,
    FlagOut,
    Geometry,
    ParcelOut,
    PhotoOut,
    PhotoRequestOut,
    Shot,
)
from s3tr.review.models import ACTIVE_STATES, Case, Decision, Declaration, Photo, PhotoRequest

__all__ = [
    "aware",
    "case_commune",
    "case_in_department",
    "flags_for",
    "in_commune",
    "latest_declaration",
    "outline_wgs84",
    "parcel_out",
    "photo_out",
    "photo_requests_of",
    "request_in_pacage",
    "request_out",
]

SHOTS = {
    "fr": [
        (
            "general",
            "Une vue générale de la parcelle, prise depuis le point indiqué dans la direction indiquée.",
        ),
        ("closeup", "Un gros plan de la végétation (ou du sol) à vos pieds, pour reconnaître la culture."),
    ],
    "en": [
        ("general", "A general view of the parcel, taken from the given point in the given direction."),
        ("closeup", "A close-up of the plants (or soil) at your feet, so the crop can be recognised."),
    ],
}


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive UTC datetimes: make them timezone-aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@lru_cache(maxsize=16)
def _to_wgs84(crs: str) -> Transformer:
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def outline_wgs84(decl: Declaration | None) -> BaseGeometry | None:
    """The declaration's geometry in WGS84 (lon/lat), or None when it has none."""
    if decl is None or not decl.geometry_wkt:
        return None
    geom = shapely_wkt.loads(decl.geometry_wkt)
    if decl.crs and decl.crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
        tr = _to_wgs84(decl.crs)
        geom = shapely.transform(geom, lambda xy: _apply(tr, xy))
    return geom


def _apply(tr: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = tr.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


_OUTLINES: dict[tuple[str | None, str], Geometry | None] = {}
_OUTLINES_MAX = 20_000


def outline_geojson(decl: Declaration | None) -> Geometry | None:
    """The GeoJSON outline (WGS84) of a declaration, cached by its stored geometry and CRS."""
    if decl is None or not decl.geometry_wkt:
        return None
    key = (decl.crs, decl.geometry_wkt)  # content, not id: several databases may share a process
    if key not in _OUTLINES:
        if len(_OUTLINES) >= _OUTLINES_MAX:
            _OUTLINES.clear()
        _OUTLINES[key] = geojson(outline_wgs84(decl))
    return _OUTLINES[key]


def geojson(geom: BaseGeometry | None) -> Geometry | None:
    """A GeoJSON geometry (coordinates rounded to 1e-7 degree, ~1 cm)."""
    if geom is None or geom.is_empty:
        return None
    rounded = shapely.set_precision(geom, 1e-7) if geom.geom_type != "Point" else geom
    m = mapping(rounded)
    if m["type"] == "Point":
        m = {"type": "Point", "coordinates": [round(geom.x, 7), round(geom.y, 7)]}
    return Geometry.model_validate({"type": m["type"], "coordinates": _lists(m["coordinates"])})


def _lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def latest_declaration(
    session: Session, id_parcel: str, *, pacage: str | None = None, campaign: int | None = None
) -> Declaration | None:
    """The latest declaration version of a parcel (latest campaign unless given), in scope."""
    stmt = select(Declaration).where(Declaration.id_parcel == id_parcel)
    if campaign is not None:
        stmt = stmt.where(Declaration.campaign == campaign)
    decl = session.scalars(
        stmt.order_by(Declaration.campaign.desc(), Declaration.version.desc()).limit(1)
    ).first()
    if decl is None or (pacage is not None and decl.pacage != pacage):
        return None
    return decl


def case_commune() -> Any:
    """The commune of a case's parcel (INSEE code of its latest declaration, or NULL), as a scalar
    subquery correlated with :class:`~s3tr.review.models.Case`: a column to select beside a page of
    cases (filter with :func:`in_commune`, which an index serves)."""
    return (
        select(Declaration.commune)
        .where(Declaration.campaign == Case.campaign, Declaration.id_parcel == Case.id_parcel)
        .order_by(Declaration.version.desc())
        .limit(1)
        .scalar_subquery()
    )


def in_commune(commune: str) -> Any:
    """Filter on :class:`~s3tr.review.models.Case`: its parcel lies in ``commune`` (INSEE code).

    Every version of a declaration carries the parcel's current commune, so a semi-join on any version
    is exact, and the database reads the few parcels of the commune from its index instead of looking
    up the commune of every case of the department.
    """
    return tuple_(Case.campaign, Case.id_parcel).in_(
        select(Declaration.campaign, Declaration.id_parcel).where(Declaration.commune == commune)
    )


def farmer_declarations(session: Session, pacage: str) -> list[Declaration]:
    """The latest version of every declaration currently belonging to a PACAGE (all campaigns)."""
    latest = (
        select(Declaration.campaign, Declaration.id_parcel, func.max(Declaration.version).label("v"))
        .group_by(Declaration.campaign, Declaration.id_parcel)
        .subquery()
    )
    stmt = (
        select(Declaration)
        .join(
            latest,
            (Declaration.campaign == latest.c.campaign)
            & (Declaration.id_parcel == latest.c.id_parcel)
            & (Declaration.version == latest.c.v),
        )
        .where(Declaration.pacage == pacage)
        .order_by(Declaration.campaign.desc(), Declaration.id_parcel)
    )
    return list(session.scalars(stmt))


def flags_for(
    session: Session, keys: list[tuple[int, str]], lang: str
) -> dict[tuple[int, str], list[FlagOut]]:
    """Current flags of parcels, keyed by (campaign, id_parcel)."""
    out: dict[tuple[int, str], list[FlagOut]] = {k: [] for k in keys}
    if not keys:
        return out
    ids = sorted({p for _, p in keys})
    camps = sorted({c for c, _ in keys})
    decisions = session.scalars(
        select(Decision)
        .where(Decision.is_current, Decision.id_parcel.in_(ids), Decision.campaign.in_(camps))
        .order_by(Decision.id_parcel, Decision.control)
    ).all()
    # the latest case of each key tells whether an instructor overrode the satellite's flag
    cases: dict[tuple[int, str, str], Case] = {}
    for case in session.scalars(
        select(Case).where(Case.id_parcel.in_(ids), Case.campaign.in_(camps)).order_by(Case.case_id)
    ):
        cases[(case.campaign, case.id_parcel, case.control)] = case
    for d in decisions:
        key = (d.campaign, d.id_parcel)
        if key not in out:
            continue
        case = cases.get((d.campaign, d.id_parcel, d.control))
        overridden = (
            case is not None and case.state == "decided" and case.decision_id == d.id and case.outcome
        )
        out[key].append(
            FlagOut(
                control=d.control,
                flag=case.outcome if overridden else d.flag,  # type: ignore[union-attr,arg-type]
                automatic_flag=d.flag,  # type: ignore[arg-type]
                decided_by="instructor" if overridden else "satellite",
                reasons=list(d.reasons or []),
                explanation=d.explanation_en if lang == "en" else d.explanation_fr,
                case_id=None if case is None else case.case_id,
                case_state=None if case is None else case.state,
                decided_at=aware(case.closed_at if overridden else d.created_at),  # type: ignore[arg-type]
            )
        )
    return out


def parcel_out(decl: Declaration, flags: list[FlagOut]) -> ParcelOut:
    return ParcelOut(
        id_parcel=decl.id_parcel,
        campaign=decl.campaign,
        code_cultu=decl.code_cultu,
        code_group=decl.code_group,
        surf_parc=decl.surf_parc,
        declaration_version=decl.version,
        outline=outline_geojson(decl),
        flags=flags,
    )


def check_list(checks: dict[str, Any], lang: str) -> list[CheckOut]:
    return [
        CheckOut(
            name=c["name"],
            passed=c.get("passed"),
            message=c.get("message_en" if lang == "en" else "message_fr", ""),
            details=c.get("details") or {},
        )
        for c in (checks or {}).get("results", [])
    ]


def photo_out(photo: Photo, lang: str) -> PhotoOut:
    checks = check_list(photo.checks, lang)
    return PhotoOut(
        id=photo.id,
        request_id=photo.request_id,
        case_id=photo.case_id,
        sha256=photo.sha256,
        view=photo.view,
        lon=photo.lon,
        lat=photo.lat,
        heading_deg=photo.heading_deg,
        taken_at=aware(photo.taken_at),
        received_at=aware(photo.received_at),  # type: ignore[arg-type]
        accepted=all(c.passed is not False for c in checks),
        checks=checks,
    )


def photos_by_request(session: Session, request_ids: list[int]) -> dict[int, list[Photo]]:
    """The photos of several requests in one query, in upload order."""
    out: dict[int, list[Photo]] = {rid: [] for rid in request_ids}
    if request_ids:
        for photo in session.scalars(
            select(Photo).where(Photo.request_id.in_(request_ids)).order_by(Photo.id)
        ):
            out[photo.request_id].append(photo)  # type: ignore[index]
    return out


def request_out(
    req: PhotoRequest,
    case: Case,
    decl: Declaration | None,
    lang: str,
    session: Session,
    photos: list[Photo] | None = None,
) -> PhotoRequestOut:
    target = None
    if req.target_lon is not None and req.target_lat is not None:
        target = Geometry(type="Point", coordinates=[req.target_lon, req.target_lat])
    if photos is None:
        photos = photos_by_request(session, [req.id])[req.id]
    return PhotoRequestOut(
        id=req.id,
        case_id=case.case_id,
        campaign=case.campaign,
        id_parcel=case.id_parcel,
        control=case.control,
        state=req.state,  # type: ignore[arg-type]
        target=target,
        parcel_outline=outline_geojson(decl),
        heading_deg=req.heading_deg,
        instructions=req.instructions,
        shots=[Shot(view=v, description=t) for v, t in SHOTS["en" if lang == "en" else "fr"]],  # type: ignore[arg-type]
        deadline=req.deadline,
        created_at=aware(req.created_at),  # type: ignore[arg-type]
        photos=[photo_out(p, lang) for p in photos],
    )


_D2 = aliased(Declaration)


@lru_cache(maxsize=4)
def _photo_requests_query(by_state: bool, by_request: bool) -> Any:
    """The listing statement, built once per shape (building it costs more than running it)."""
    # the latest declaration version of the case's parcel, as latest_declaration() picks it
    latest = (
        select(func.max(_D2.version))
        .where(_D2.campaign == Case.campaign, _D2.id_parcel == Case.id_parcel)
        .correlate(Case)
        .scalar_subquery()
    )
    stmt = (
        select(
            PhotoRequest.id,
            PhotoRequest.state,
            PhotoRequest.target_lon,
            PhotoRequest.target_lat,
            PhotoRequest.heading_deg,
            PhotoRequest.instructions,
            PhotoRequest.deadline,
            PhotoRequest.created_at,
            Case.case_id,
            Case.campaign,
            Case.id_parcel,
            Case.control,
            Declaration.crs,
            Declaration.geometry_wkt,
            Photo.id.label("photo_id"),
            Photo.request_id.label("photo_request_id"),
            Photo.case_id.label("photo_case_id"),
            Photo.view.label("photo_view"),
            Photo.sha256.label("photo_sha256"),
            Photo.lon.label("photo_lon"),
            Photo.lat.label("photo_lat"),
            Photo.heading_deg.label("photo_heading_deg"),
            Photo.taken_at.label("photo_taken_at"),
            Photo.received_at.label("photo_received_at"),
            Photo.checks.label("photo_checks"),
        )
        .join(Case, Case.case_id == PhotoRequest.case_id)
        .outerjoin(
            Declaration,
            and_(
                Declaration.campaign == Case.campaign,
                Declaration.id_parcel == Case.id_parcel,
                Declaration.version == latest,
            ),
        )
        .outerjoin(Photo, Photo.request_id == PhotoRequest.id)
        .where(Case.pacage == bindparam("pacage"))
        .order_by(PhotoRequest.id, Photo.id)
    )
    if by_state:
        stmt = stmt.where(PhotoRequest.state == bindparam("state"))
    if by_request:
        stmt = stmt.where(PhotoRequest.id == bindparam("request_id"))
    return stmt


class _Outline:
    """Duck-types the two columns of a declaration that :func:`outline_geojson` reads."""

    __slots__ = ("crs", "geometry_wkt")

    def __init__(self, crs: str | None, geometry_wkt: str | None) -> None:
        self.crs, self.geometry_wkt = crs, geometry_wkt


def photo_requests_of(
    session: Session | Connection,
    pacage: str,
    lang: str,
    *,
    state: str | None = None,
    request_id: int | None = None,
) -> list[PhotoRequestOut]:
    """The photo requests of a PACAGE with their photos, in one SQL query (only the needed columns).

    The listing is the busiest read of the farmers' app: one round trip, no ORM objects, and
    the parcel outlines come from :func:`outline_geojson`'s cache.

    Parameters
    ----------
    session
        An open session or connection on the review database.
    pacage
        The farmer's PACAGE: requests of other farms are never returned.
    lang
        ``fr`` or ``en`` (messages of the checks, what to shoot).
    state
        Only requests in this state.
    request_id
        Only this request (an empty list when it is not the farmer's).

    Returns
    -------
    list of PhotoRequestOut
        Ordered by request id; photos in upload order.
    """
    out: list[PhotoRequestOut] = []
    current: PhotoRequestOut | None = None
    stmt = _photo_requests_query(state is not None, request_id is not None)
    params = {"pacage": pacage, "state": state, "request_id": request_id}
    for row in session.execute(stmt, params):
        if current is None or current.id != row.id:
            # the row carries the request's and the case's columns under their own names
            outline = _Outline(row.crs, row.geometry_wkt)
            current = request_out(row, row, outline, lang, session, photos=[])  # type: ignore[arg-type]
            out.append(current)
        if row.photo_id is not None:
            fields = {k[len("photo_") :]: v for k, v in row._mapping.items() if k.startswith("photo_")}
            current.photos.append(photo_out(SimpleNamespace(**fields), lang))  # type: ignore[arg-type]
    return out


def request_in_pacage(session: Session, request_id: int, pacage: str) -> tuple[PhotoRequest, Case] | None:
    """A photo request and its case when the case belongs to ``pacage``."""
    row = session.execute(
        select(PhotoRequest, Case)
        .join(Case, Case.case_id == PhotoRequest.case_id)
        .where(PhotoRequest.id == request_id)
    ).first()
    if row is None or row[1].pacage != pacage:
        return None
    return row[0], row[1]


def case_in_department(session: Session, case_id: int, department: str | None) -> Case | None:
    """A case when it belongs to ``department``."""
    case = session.get(Case, case_id)
    if case is None or department is None or case.department != department:
        return None
    return case


def is_active(case: Case) -> bool:
    return case.state in {s.value for s in ACTIVE_STATES}
