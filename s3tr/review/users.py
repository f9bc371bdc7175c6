"""Users and API tokens. Only a SHA-256 hash of each token is stored; the token is shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Select, bindparam, insert, select, update

from s3tr.errors import S3trError
from s3tr.review.database import write_connection
from s3tr.review.models import ApiToken, AuditLog, User, table_of

__all__ = [
    "ROLES",
    "InvalidTokenError",
    "TokenUser",
    "create_user",
    "hash_token",
    "issue_token",
    "revoke_token",
    "verify_token",
]

ROLES = ("instructor", "farmer", "operator", "admin")


class InvalidTokenError(S3trError, PermissionError):
    """The token is unknown, revoked, expired, or its user is inactive."""


@dataclass(frozen=True)
class TokenUser:
    """The user a valid token belongs to."""

    user_id: int
    username: str
    role: str
    pacage: str | None
    department: str | None


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (tokens are 256-bit random, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _audit(conn, actor: str, action: str, entity_id: str, details: dict) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        insert(table_of(AuditLog)).values(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            entity="user",
            entity_id=entity_id,
            details=details,
        )
    )


def create_user(
    engine: Engine,
    username: str,
    *,
    role: str,
    pacage: str | None = None,
    department: str | None = None,
    display_name: str | None = None,
    actor: str = "admin",
) -> int:
    """Create a user and return its id. Farmers need a 9-digit PACAGE, instructors a department."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {ROLES}")
    if role == "farmer" and not (pacage and len(pacage) == 9 and pacage.isdigit()):
        raise ValueError(f"farmer {username!r} needs a 9-digit PACAGE number, got {pacage!r}")
    if role == "instructor" and not department:
        raise ValueError(f"instructor {username!r} needs a department (e.g. '86')")
    with write_connection(engine) as conn:
        user_id = conn.execute(
            insert(table_of(User))
            .values(
                username=username,
                display_name=display_name,
                role=role,
                pacage=pacage,
                department=department,
                active=True,
                created_at=datetime.now(UTC),
            )
            .returning(table_of(User).c.id)
        ).scalar_one()
        _audit(conn, actor, "user_created", str(user_id), {"username": username, "role": role})
    return int(user_id)


def issue_token(engine: Engine, user_id: int, *, label: str | None = None, ttl_days: int | None = 365) -> str:
    """Create a token for a user; returns the plaintext token (the only time it is available)."""
    token = "s3tr_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with write_connection(engine) as conn:
        conn.execute(
            insert(table_of(ApiToken)).values(
                user_id=user_id,
                token_hash=hash_token(token),
                label=label,
                created_at=now,
                expires_at=None if ttl_days is None else now + timedelta(days=ttl_days),
            )
        )
        _audit(conn, "admin", "token_issued", str(user_id), {"label": label})
    return token


@lru_cache(maxsize=1)
def token_query() -> Select[Any]:
    """A token's row and its user's, by the bound ``token_hash``.

    Built once: on the API's hot path, building the statement costs more than running it.
    """
    t, u = table_of(ApiToken), table_of(User)
    return (
        select(
            t.c.id.label("token_id"),
            t.c.expires_at,
            t.c.revoked_at,
            t.c.last_used_at,
            u.c.id.label("user_id"),
            u.c.username,
            u.c.role,
            u.c.pacage,
            u.c.department,
            u.c.active,
        )
        .join(u, u.c.id == t.c.user_id)
        .where(t.c.token_hash == bindparam("token_hash"))
    )


def verify_token(engine: Engine, token: str, *, now: datetime | None = None) -> TokenUser:
    """The user of a valid token; :class:`InvalidTokenError` otherwise (same message for every cause)."""
    when = now or datetime.now(UTC)
    with write_connection(engine) as conn:
        row = conn.execute(token_query(), {"token_hash": hash_token(token)}).first()
        expires = None if row is None else row.expires_at
        if expires is not None and expires.tzinfo is None:  # SQLite returns naive UTC
            expires = expires.replace(tzinfo=UTC)
        if (
            row is None
            or row.revoked_at is not None
            or not row.active
            or (expires is not None and expires <= when)
        ):
            raise InvalidTokenError("invalid, expired or revoked token: ask an administrator for a new one")
        t = table_of(ApiToken)
        conn.execute(update(t).where(t.c.id == row.token_id).values(last_used_at=when))
    return TokenUser(int(row.user_id), row.username, row.role, row.pacage, row.department)


def revoke_token(engine: Engine, token: str, *, actor: str = "admin") -> bool:
    """Revoke a token; returns whether it existed and was active."""
    t = table_of(ApiToken)
    with write_connection(engine) as conn:
        done = conn.execute(
            update(t)
            .where(t.c.token_hash == hash_token(token), t.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        ).rowcount
        if done:
            _audit(conn, actor, "token_revoked", hash_token(token)[:12], {})
    return bool(done)
