"""Farmer endpoints of notifications: my notifications (list, mark read) and my preferences.

The app shows this list even when push or e-mail failed: every notification of the farmer is
here, in the language of ``Accept-Language``, whatever the channel preferences.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import Field

from s3tr.api.deps import Clock, CurrentFarmer, EngineDep, Lang, SessionDep
from s3tr.api.problems import ApiProblem, problem_responses
from s3tr.api.schemas import _In, _Out
from s3tr.notify.inbox import list_notifications, mark_read
from s3tr.notify.outbox import FARMER_KINDS
from s3tr.notify.preferences import get_preferences, set_preferences
from s3tr.settings import get_settings

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["notifications"])
_AUTH = problem_responses(401, 403, 404, 422)

NotificationKind = Literal[
    "photo_requested", "reminder", "photo_checked", "case_decided", "flag_changed", "correction_accepted"
]


class NotificationOut(_Out):
    """A notification of mine, rendered in my language."""

    id: int
    kind: str = Field(description="What happened: photo_requested, reminder, photo_checked, ...")
    created_at: datetime = Field(description="When it happened (UTC).")
    read_at: datetime | None = Field(description="When I marked it read (null: unread).")
    title: str = Field(description="One-line summary (the e-mail subject, the push title).")
    body: str = Field(description="The full message, plain text, with a link to the app.")
    campaign: int | None = Field(description="Campaign (year) concerned, if any.")
    id_parcel: str | None
    case_id: int | None = Field(description="The review case concerned, if any.")
    request_id: int | None = Field(description="The photo request concerned, if any.")
    data: dict[str, Any] = Field(description="Structured details (deadline, flags, checks...), JSON.")


class PreferencesOut(_Out):
    """How I want to be told."""

    email: str | None = Field(description="Where e-mails go (null: no e-mail).")
    email_enabled: bool = Field(description="Send e-mails (when an address is set).")
    push_enabled: bool = Field(description="Send push notifications to the app.")
    opted_out: bool = Field(description="No e-mail nor push at all (the list here stays available).")
    muted_kinds: list[str] = Field(description="Kinds of notification never sent by e-mail or push.")
    locale: Literal["fr", "en"] = Field(description="Language of e-mails and push messages.")


class PreferencesIn(_In):
    """Changes to my notification preferences (absent fields are left as they are)."""

    email: str | None = Field(
        None,
        max_length=320,
        pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$",
        description="Where e-mails go (null: no e-mail).",
    )
    email_enabled: bool | None = Field(None, description="Send e-mails (when an address is set).")
    push_enabled: bool | None = Field(None, description="Send push notifications to the app.")
    opted_out: bool | None = Field(None, description="No e-mail nor push at all.")
    muted_kinds: list[NotificationKind] | None = Field(
        None, max_length=len(FARMER_KINDS), description="Kinds never sent by e-mail or push."
    )
    locale: Literal["fr", "en"] | None = Field(None, description="Language of e-mails and push messages.")


def _only_query(*names: str):  # type: ignore[no-untyped-def]
    """A dependency refusing unknown query parameters (a misspelt ``unread`` must not be ignored)."""

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            allowed = ", ".join(names) or "none"
            raise ApiProblem(422, f"unknown query parameter(s) {unknown}; allowed: {allowed}")

    return Depends(check)


def _app_url() -> str:
    return get_settings().notify_app_url


@router.get(
    "/me/notifications",
    response_model=list[NotificationOut],
    responses=_AUTH,
    dependencies=[_only_query("unread", "limit", "before_id")],
)
def my_notifications(
    user: CurrentFarmer,
    session: SessionDep,
    lang: Lang,
    unread: Annotated[bool, Query(description="Only the unread ones.")] = False,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many, newest first.")] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**62, description="Page backwards: only ids below this one.")
    ] = None,
) -> list[NotificationOut]:
    """My notifications, newest first (photo requests, reminders, photo checks, decisions...)."""
    rows = list_notifications(
        session,
        user_id=user.user_id,
        role=user.role,
        pacage=user.pacage,
        locale=lang,
        app_url=_app_url(),
        unread_only=unread,
        limit=limit,
        before_id=before_id,
    )
    return [NotificationOut(**r) for r in rows]


_NotificationId = Annotated[int, PathParam(ge=1, le=2**62, description="The notification's id.")]


@router.post(
    "/me/notifications/{notification_id}/read",
    response_model=NotificationOut,
    responses=_AUTH,
    dependencies=[_only_query()],
)
def read_notification(
    notification_id: _NotificationId, user: CurrentFarmer, session: SessionDep, lang: Lang, now: Clock
) -> NotificationOut:
    """Mark one of my notifications read (doing it again changes nothing)."""
    row = mark_read(
        session,
        notification_id,
        user_id=user.user_id,
        role=user.role,
        pacage=user.pacage,
        locale=lang,
        app_url=_app_url(),
        now=now,
    )
    if row is None:
        raise ApiProblem(404, f"no notification {notification_id} for you")
    session.commit()
    return NotificationOut(**row)


@router.get(
    "/me/notification-preferences", response_model=PreferencesOut, responses=problem_responses(401, 403, 422)
)
def my_preferences(user: CurrentFarmer, engine: EngineDep) -> PreferencesOut:
    """How I am told: e-mail address, e-mail and push on or off, muted kinds, language."""
    return PreferencesOut(**get_preferences(engine, user.user_id).as_dict())


@router.put(
    "/me/notification-preferences",
    response_model=PreferencesOut,
    responses=problem_responses(400, 401, 403, 422),  # 400: a body that is not JSON
)
def change_preferences(body: PreferencesIn, user: CurrentFarmer, engine: EngineDep) -> PreferencesOut:
    """Change how I am told (only the fields sent change); ``opted_out`` stops every e-mail and push."""
    changes = body.model_dump(exclude_unset=True)
    try:
        prefs = set_preferences(engine, user.user_id, **changes)
    except ValueError as exc:
        raise ApiProblem(422, str(exc)) from None
    return PreferencesOut(**prefs.as_dict())
