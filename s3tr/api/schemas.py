"""Request and response bodies of the API (one Pydantic model per use; never ORM rows).

Coordinates are WGS84 degrees (EPSG:4326): GeoJSON order ``[lon, lat]``; headings are degrees
clockwise from true north; dates are ISO 8601; surfaces are hectares.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AssignIn",
    "AuditEntry",
    "CaseDetail",
    "CaseList",
    "CaseOut",
    "CheckOut",
    "CorrectionIn",
    "CorrectionOut",
    "DecideIn",
    "DecisionOut",
    "FieldVisitIn",
    "FieldVisitOut",
    "FlagOut",
    "Geometry",
    "Me",
    "ParcelOut",
    "PhotoOut",
    "PhotoRequestIn",
    "PhotoRequestOut",
    "ReopenIn",
    "SeriesPoint",
    "Shot",
    "UploadOut",
]


FIELD_DOCS: dict[str, str] = {
    "action": "What was done (e.g. case_decided, photo_received, field_visit).",
    "activity_seen": "Whether agricultural activity was seen on the parcel.",
    "actor": "Who did it (username, or 'nightly' for the nightly run).",
    "assigned_to": "User id of the instructor the case is assigned to.",
    "at": "When it happened (UTC).",
    "audit": "The audit trail of the case and of its parcel's declarations, oldest first.",
    "bsi": "Mean bare-soil index of the parcel.",
    "campaign": "CAP campaign year.",
    "case_id": "The review case's id.",
    "cases_cancelled": "Review cases cancelled because their control no longer applies.",
    "checks": "Every named photo check, in a fixed order.",
    "closed_at": "When the case was decided or cancelled (UTC).",
    "comment": "Free text of the instructor.",
    "control": "Control name: crop_group, min_activity, grassland_not_ploughed or fallow.",
    "created_at": "When it was created (UTC).",
    "date": "Acquisition date (UTC).",
    "deadline": "Last day (inclusive).",
    "decided_at": "When this verdict was reached (UTC).",
    "decided_by": "Whether the satellite or an instructor gave the current flag.",
    "decisions": "The history of automatic decisions of this control, oldest first.",
    "declaration_version": "Version of the declaration (1 = as declared; a correction adds one).",
    "department": "Department code (e.g. 86).",
    "description": "What to photograph, in plain words.",
    "details": "Figures and context behind it, JSON.",
    "entity": "Kind of record concerned (case, photo, declaration, user).",
    "entity_id": "Id of the record concerned.",
    "evidence": "Marker evidence behind the decision (JSON: dates, counts, confidences).",
    "expected_version": "The case version you saw (optimistic locking; or send If-Match).",
    "explanation": "Plain-language explanation (language from Accept-Language).",
    "field_visits": "Field visits recorded as evidence, oldest first.",
    "flag": "green, orange or red.",
    "flags": "Current verdict of every control that applies to the parcel.",
    "heading_deg": "Camera direction, degrees clockwise from true north.",
    "id": "Identifier.",
    "id_parcel": "The parcel's id in the declaration.",
    "instructions": "What the instructor asks to show.",
    "is_current": "Whether this is the control's current decision.",
    "items": "The cases of this page.",
    "lat": "Latitude, WGS84 degrees (from the photo's EXIF).",
    "limit": "Page size used.",
    "lon": "Longitude, WGS84 degrees (from the photo's EXIF).",
    "name": "Name of the check.",
    "ndmi": "Mean moisture index (NDMI) of the parcel.",
    "ndti": "Mean tillage index (NDTI) of the parcel: dry vegetation and litter high, bare soil low.",
    "ndvi": "Mean NDVI of the parcel's clear pixels.",
    "ndvi_std": "Standard deviation of NDVI within the parcel.",
    "ndwi": "Mean water index (NDWI) of the parcel.",
    "observed_crop": "Crop seen on the parcel, if any.",
    "offset": "Number of cases skipped.",
    "outcome": "The instructor's verdict: green or red.",
    "outcome_note": "The instructor's comment with the verdict.",
    "outline": "The parcel outline, GeoJSON in WGS84.",
    "pacage": "The farm's 9-digit PACAGE number.",
    "photo_requests": "Photo requests of the case, oldest first.",
    "photos": "Photos received, oldest first, with their checks.",
    "reasons": "Reason codes of the automatic decision.",
    "received_at": "When the server received the photo (UTC).",
    "recorded_at": "When it was recorded (UTC).",
    "recorded_by": "Who recorded it.",
    "request_id": "The photo request this photo answers.",
    "retired_controls": "Controls that no longer apply to the corrected crop.",
    "revision": "Revision number of the decision for its control (1, 2, ...).",
    "role": "farmer, instructor, operator or admin.",
    "ruleset_version": "Version of the rule set that decided.",
    "run_id": "The run that produced the decision (nightly or rescore).",
    "series": "The parcel's Sentinel-2 time series, one point per acquisition.",
    "sha256": "SHA-256 of the photo file, hex.",
    "state": "Current state.",
    "surf_parc": "Declared area, hectares.",
    "taken_at": "Capture time declared by the photo (EXIF), timezone-aware.",
    "type": "GeoJSON geometry type.",
    "updated_at": "Last change (UTC).",
    "user_id": "The user's id.",
    "username": "The user's login name.",
    "valid": "Whether the acquisition was clear enough over the parcel to be used.",
    "valid_fraction": "Fraction of the parcel's pixels that were clear.",
    "view": "Which shot: general (a wide view) or closeup (the plants at your feet).",
    "visited_on": "Day of the visit.",
    "within_window": "Whether the correction came inside the campaign's correction window.",
}
"""Descriptions of the fields that do not give their own (same name, same meaning everywhere)."""


class _Documented(BaseModel):
    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for name, info in cls.model_fields.items():
            if info.description is None and name in FIELD_DOCS:
                info.description = FIELD_DOCS[name]
                changed = True
        if changed:
            cls.model_rebuild(force=True)


class _Out(_Documented):
    model_config = ConfigDict(extra="forbid")


class _In(_Documented):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Geometry(_Out):
    """A GeoJSON geometry in WGS84 (``[lon, lat]`` degrees)."""

    type: Literal["Point", "Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(description="GeoJSON coordinates, longitude first.")


class Me(_Out):
    """Who the token belongs to."""

    user_id: int
    username: str
    role: Literal["farmer", "instructor", "operator", "admin"]
    pacage: str | None = Field(None, description="The farm's 9-digit PACAGE number (farmers).")
    department: str | None = Field(None, description="The department the instructor works for.")


class FlagOut(_Out):
    """The current verdict of one control on a parcel."""

    control: str = Field(description="Control name, e.g. crop_group, min_activity.")
    flag: Literal["green", "orange", "red"] = Field(
        description="Current flag: the instructor's outcome when a case was decided, else the satellite's."
    )
    automatic_flag: Literal["green", "orange", "red"] = Field(description="The satellite's flag.")
    decided_by: Literal["satellite", "instructor"]
    reasons: list[str] = Field(description="Reason codes of the automatic decision.")
    explanation: str = Field(description="Plain-language explanation (language from Accept-Language).")
    case_id: int | None = Field(None, description="The review case of this control, if any.")
    case_state: str | None = Field(None, description="State of that case.")
    decided_at: datetime


class ParcelOut(_Out):
    """A declared parcel with its current flags."""

    id_parcel: str
    campaign: int
    code_cultu: str = Field(description="Declared crop code.")
    code_group: int | None = Field(None, description="Declared crop group.")
    surf_parc: float | None = Field(None, description="Declared area, hectares.")
    declaration_version: int = Field(description="Version of the declaration (a correction adds one).")
    outline: Geometry | None = Field(None, description="The parcel outline, WGS84.")
    flags: list[FlagOut]


class Shot(_Out):
    """One photo the farmer is asked to take."""

    view: Literal["general", "closeup"]
    description: str


class CheckOut(_Out):
    """The outcome of one named photo check."""

    name: str
    passed: bool | None = Field(description="None when the check could not be made.")
    message: str = Field(description="Plain-language message (language from Accept-Language).")
    details: dict[str, Any] = Field(default_factory=dict)


class PhotoOut(_Out):
    """A received photo and its checks."""

    id: int
    request_id: int | None
    case_id: int
    sha256: str
    view: str | None
    lon: float | None
    lat: float | None
    heading_deg: float | None
    taken_at: datetime | None
    received_at: datetime
    accepted: bool = Field(description="True when no check failed.")
    checks: list[CheckOut]


class UploadOut(PhotoOut):
    """The answer to an upload: the stored photo, and whether this was a replay of an earlier upload."""

    replayed: bool = Field(description="True when the Idempotency-Key was seen before (no new photo).")


class PhotoRequestOut(_Out):
    """A request for geotagged photos of a spot of a parcel."""

    id: int
    case_id: int
    campaign: int
    id_parcel: str
    control: str
    state: Literal["pending", "fulfilled", "expired", "cancelled"]
    target: Geometry | None = Field(None, description="Where to stand: a GeoJSON Point, WGS84.")
    parcel_outline: Geometry | None = Field(None, description="The parcel outline, WGS84.")
    heading_deg: float | None = Field(
        None, description="Which way to point the camera, degrees clockwise from north (null: any)."
    )
    instructions: str
    shots: list[Shot] = Field(description="What to show: a general view and a close-up.")
    deadline: date | None
    created_at: datetime
    photos: list[PhotoOut]


class PhotoRequestIn(_In):
    """An instructor's request for photos."""

    target_lon: float | None = Field(
        None,
        ge=-180,
        le=180,
        description="Longitude of the spot, WGS84 degrees (default: inside the parcel).",
    )
    target_lat: float | None = Field(None, ge=-90, le=90, description="Latitude of the spot, WGS84 degrees.")
    heading_deg: float | None = Field(None, ge=0, le=360, description="Camera direction, degrees from north.")
    deadline: date = Field(description="Last day to send the photos.")
    instructions: str = Field(min_length=1, max_length=2000, description="What to show, in plain words.")
    expected_version: int | None = Field(None, ge=1, description="Case version seen (optimistic locking).")


class CorrectionIn(_In):
    """A farmer's correction of the declared crop (droit à l'erreur)."""

    code_cultu: str = Field(pattern=r"^[A-Za-z0-9]{3}$", description="The corrected crop code, e.g. BTH.")
    code_group: int = Field(ge=1, le=99, description="The crop group of that code.")
    reason: str | None = Field(None, max_length=2000, description="Why (optional).")


class CorrectionOut(_Out):
    """What a correction did."""

    id_parcel: str
    campaign: int
    declaration_version: int
    within_window: bool
    retired_controls: list[str]
    cases_cancelled: int
    flags: list[FlagOut] = Field(description="The parcel's flags after re-scoring.")


class DecideIn(_In):
    """An instructor's verdict on a case."""

    outcome: Literal["green", "red"]
    comment: str = Field(min_length=1, max_length=4000, description="Mandatory justification.")
    expected_version: int | None = Field(None, ge=1, description="Case version seen (or If-Match).")

    @field_validator("comment")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the comment must not be blank")
        return v


class AssignIn(_In):
    """Assign a case to an instructor of the same department."""

    user_id: int = Field(ge=1, description="The instructor's user id.")
    expected_version: int | None = Field(None, ge=1)


class ReopenIn(_In):
    """Reopen a decided case."""

    comment: str = Field(min_length=1, max_length=4000)
    expected_version: int | None = Field(None, ge=1)


class FieldVisitIn(_In):
    """A field visit recorded as evidence (for farmers without a smartphone)."""

    visited_on: date
    observed_crop: str | None = Field(None, max_length=64, description="Crop seen on the parcel, if any.")
    activity_seen: bool | None = Field(None, description="Whether agricultural activity was seen.")
    comment: str = Field(min_length=1, max_length=4000)


class FieldVisitOut(_Out):
    """A recorded field visit."""

    id: int
    case_id: int
    visited_on: date
    observed_crop: str | None
    activity_seen: bool | None
    comment: str
    recorded_by: str
    recorded_at: datetime


class CaseOut(_Out):
    """A review case."""

    case_id: int
    campaign: int
    id_parcel: str
    control: str
    state: str
    flag: str = Field(description="Automatic flag that opened or last updated the case.")
    reasons: list[str]
    outcome: str | None = Field(None, description="The instructor's green/red once decided.")
    outcome_note: str | None = None
    priority: float = Field(description="Amount at stake, EUR (higher first).")
    deadline: date | None
    department: str | None
    commune: str | None = Field(None, description="INSEE code of the parcel's commune, when declared.")
    pacage: str | None
    surf_parc: float | None
    assigned_to: int | None
    version: int = Field(
        description="Optimistic-locking version: send it back as expected_version or If-Match."
    )
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class CaseList(_Out):
    """A page of the queue."""

    total: int = Field(description="Number of cases matching the filters.")
    limit: int
    offset: int
    items: list[CaseOut]


class SeriesPoint(_Out):
    """One acquisition of the parcel's time series."""

    date: date
    valid: bool
    ndvi: float | None = None
    ndvi_std: float | None = None
    ndmi: float | None = None
    ndwi: float | None = None
    bsi: float | None = None
    ndti: float | None = None
    valid_fraction: float | None = None


class DecisionOut(_Out):
    """One automatic decision in a control's history."""

    id: int
    control: str
    revision: int
    is_current: bool
    flag: str
    reasons: list[str]
    evidence: dict[str, Any]
    explanation: str
    ruleset_version: str
    run_id: str | None
    created_at: datetime


class AuditEntry(_Out):
    """One line of the audit log."""

    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str | None
    details: dict[str, Any]


class CaseDetail(CaseOut):
    """A case with all its evidence."""

    outline: Geometry | None = None
    series: list[SeriesPoint]
    evidence: dict[str, Any] = Field(description="Marker evidence of the current decision.")
    decisions: list[DecisionOut]
    photo_requests: list[PhotoRequestOut]
    photos: list[PhotoOut]
    field_visits: list[FieldVisitOut]
    audit: list[AuditEntry]
