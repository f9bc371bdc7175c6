"""Per-user notification preferences: e-mail address, channels, language, muted kinds, opt-out.

A user without a row gets :data:`DEFAULTS` (push on, no e-mail since none is known, French).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from s3tr.notify.outbox import Kind
from s3tr.notify.templates import LOCALES
from s3tr.review.database import session_scope
from s3tr.review.models import NotificationPreference, User

__all__ = ["DEFAULTS", "Preferences", "get_preferences", "preferences_for", "set_preferences"]

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


@dataclass(frozen=True)
class Preferences:
    """What a user wants to receive, and where."""

    email: str | None = None
    email_enabled: bool = True
    push_enabled: bool = True
    opted_out: bool = False
    muted_kinds: tuple[str, ...] = field(default_factory=tuple)
    locale: str = "fr"

    def channels_for(self, kind: str) -> list[str]:
        """The channels a ``kind`` notification goes out on for this user (empty: in-app only)."""
        if self.opted_out or kind in self.muted_kinds:
            return []
        out = []
        if self.email_enabled and self.email:
            out.append("email")
        if self.push_enabled:
            out.append("webhook")
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        d = asdict(self)
        d["muted_kinds"] = list(self.muted_kinds)
        return d


DEFAULTS = Preferences()


def _from_row(row: NotificationPreference | None) -> Preferences:
    if row is None:
        return DEFAULTS
    return Preferences(
        email=row.email,
        email_enabled=row.email_enabled,
        push_enabled=row.push_enabled,
        opted_out=row.opted_out,
        muted_kinds=tuple(row.muted_kinds or ()),
        locale=row.locale,
    )


def preferences_for(conn: Session | Connection, user_ids: Iterable[int]) -> dict[int, Preferences]:
    """Preferences of many users at once (defaults for those without a row)."""
    ids = sorted({int(u) for u in user_ids})
    if not ids:
        return {}
    t = NotificationPreference.__table__
    rows = conn.execute(select(t).where(t.c.user_id.in_(ids))).mappings().all()  # type: ignore[attr-defined]
    found = {
        r["user_id"]: Preferences(
            email=r["email"],
            email_enabled=r["email_enabled"],
            push_enabled=r["push_enabled"],
            opted_out=r["opted_out"],
            muted_kinds=tuple(r["muted_kinds"] or ()),
            locale=r["locale"],
        )
        for r in rows
    }
    return {u: found.get(u, DEFAULTS) for u in ids}


def get_preferences(engine: Engine, user_id: int) -> Preferences:
    """One user's preferences (defaults when never set)."""
    with session_scope(engine) as session:
        return _from_row(session.get(NotificationPreference, user_id))


def set_preferences(engine: Engine, user_id: int, **changes: Any) -> Preferences:
    """Change some of a user's preferences and return them all.

    Parameters
    ----------
    changes
        Any of ``email``, ``email_enabled``, ``push_enabled``, ``opted_out``, ``muted_kinds``
        (kinds of :class:`~s3tr.notify.outbox.Kind`), ``locale`` (``fr`` or ``en``).

    Raises
    ------
    ValueError
        Unknown user, field, kind, language, or a malformed e-mail address.
    """
    allowed = {f for f in Preferences.__dataclass_fields__}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"unknown preference(s) {sorted(unknown)}; known: {sorted(allowed)}")
    for flag in ("email_enabled", "push_enabled", "opted_out"):
        if flag in changes and not isinstance(changes[flag], bool):
            raise ValueError(f"{flag} must be true or false, got {changes[flag]!r}")
    if changes.get("email") is not None and not _EMAIL.match(str(changes["email"])):
        raise ValueError(f"{changes['email']!r} is not an e-mail address")
    if "locale" in changes and changes["locale"] not in LOCALES:
        raise ValueError(f"language {changes['locale']!r} is not available; use one of {LOCALES}")
    if "muted_kinds" in changes:
        kinds = tuple(str(k) for k in changes["muted_kinds"] or ())
        bad = sorted(set(kinds) - {k.value for k in Kind})
        if bad:
            raise ValueError(f"unknown notification kind(s) {bad}; known: {[k.value for k in Kind]}")
        changes["muted_kinds"] = kinds
    with session_scope(engine, write=True) as session:
        if session.get(User, user_id) is None:
            raise ValueError(f"no user {user_id}")
        row = session.get(NotificationPreference, user_id)
        prefs = replace(_from_row(row), **changes)
        values = prefs.as_dict() | {"updated_at": datetime.now(UTC)}
        if row is None:
            session.add(NotificationPreference(user_id=user_id, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
        return prefs
