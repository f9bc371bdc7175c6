"""FastAPI dependencies: the engine, sessions, the clock, and the authenticated user.

Authentication is ``Authorization: Bearer <token>``; the token's SHA-256 is looked up on every
request (one indexed read, no cache: a revoked token is refused from the next request on).
Missing, malformed, unknown, expired and revoked tokens all get the same 401 with
``WWW-Authenticate`` (no hint which).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from s3tr.api.problems import ApiProblem
from s3tr.photos import DEFAULT_MAX_BYTES
from s3tr.review.users import InvalidTokenError, TokenUser, hash_token, token_query, verify_token

__all__ = [
    "ApiSettings",
    "Clock",
    "CurrentFarmer",
    "CurrentInstructor",
    "CurrentUser",
    "EngineDep",
    "Lang",
    "SessionDep",
    "SettingsDep",
]

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[A-Za-z0-9_\-.~+/]{16,256}=*$")


@dataclass
class ApiSettings:
    """Tunable limits and checks of the API.

    Attributes
    ----------
    max_upload_bytes
        Largest accepted photo, bytes (413 beyond, counted while the body streams in).
    position_buffer_m, near_target_m, heading_tolerance_deg
        Photo-check tolerances (metres, degrees), see :func:`s3tr.photos.check_photo`.
    target_max_distance_m
        A requested target point farther than this from the parcel is refused (422): it is
        most likely a typo or swapped latitude/longitude.
    clock
        Returns the current time (timezone-aware UTC); tests pin it to a date of the demo season.
    """

    max_upload_bytes: int = DEFAULT_MAX_BYTES
    position_buffer_m: float = 20.0
    near_target_m: float = 50.0
    heading_tolerance_deg: float = 60.0
    target_max_distance_m: float = 1000.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


# Dependencies that do no blocking I/O are ``async``: FastAPI runs sync ones in the thread
# pool, one hop per dependency and request, which costs more than they do.
async def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _session(request: Request) -> AsyncIterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


async def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def _workdir(request: Request) -> Path | None:
    return request.app.state.workdir


EngineDep = Annotated[Engine, Depends(_engine)]
SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
WorkdirDep = Annotated[Path | None, Depends(_workdir)]


async def _now(request: Request) -> datetime:
    return request.app.state.settings.clock()


Clock = Annotated[datetime, Depends(_now)]


async def _lang(
    accept_language: Annotated[
        str | None, Header(description="Preferred language of messages: fr (default) or en.")
    ] = None,
) -> str:
    """``en`` when English comes before French in Accept-Language, else ``fr``."""
    if not accept_language:
        return "fr"
    best, best_q = "fr", -1.0
    for part in accept_language.split(","):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()[:2]
        q = 1.0
        for b in bits[1:]:
            if b.strip().startswith("q="):
                try:
                    q = float(b.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag in ("fr", "en") and q > best_q:
            best, best_q = tag, q
    return best


Lang = Annotated[str, Depends(_lang)]

_bearer = HTTPBearer(
    auto_error=False, description="An API token from `s3tr accounts add-farmer/add-instructor`."
)


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(
        401,
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="s3tr", error="invalid_token"'},
    )


async def _current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenUser:
    # async, and the read-only lookup runs on the event loop: one indexed SELECT costs less
    # than the thread-pool hop (and GIL hand-over) a sync dependency takes on every request;
    # nothing here waits for the database's write lock
    if creds is None:
        if request.headers.get("authorization"):
            raise _unauthorized("malformed Authorization header: send 'Authorization: Bearer <token>'")
        raise _unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    token = creds.credentials.strip()
    if not _TOKEN.match(token):
        raise _unauthorized("malformed bearer token: ask an administrator for a new one")
    now = request.app.state.settings.clock()
    engine: Engine = request.app.state.engine
    user, stale = _lookup_token(engine, token, now)
    if stale:
        _touch_later(engine, token, now)
    return user


_LAST_USED_GRANULARITY = timedelta(seconds=60)


def _lookup_token(engine: Engine, token: str, now: datetime) -> tuple[TokenUser, bool]:
    """The token's user, and whether its ``last_used_at`` is over a minute old; 401 otherwise.

    Revocation, expiry and the user's ``active`` flag are read on every request (no cache): a
    revoked token is refused from the very next request on, in every server process. Only the
    SHA-256 of the token is compared (tokens are 256-bit random: no slow hash is needed).
    """
    with engine.connect() as conn:
        row = conn.execute(token_query(), {"token_hash": hash_token(token)}).first()
    expires = None if row is None else _utc(row.expires_at)
    expired = expires is not None and expires <= now
    if row is None or row.revoked_at is not None or not row.active or expired:
        raise _unauthorized("invalid, expired or revoked token: ask an administrator for a new one")
    last = _utc(row.last_used_at)
    stale = last is None or not (now - _LAST_USED_GRANULARITY <= last <= now)
    return TokenUser(int(row.user_id), row.username, row.role, row.pacage, row.department), stale


# ``last_used_at`` is refreshed at most once a minute per token, off the request path: it is
# a write transaction that may queue behind the database's write lock, and when the minute
# turns, every concurrent request of a busy token would otherwise queue for it at once.
_TOUCHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3tr-token-touch")
_TOUCHING: dict[tuple[int, str], Future[Any]] = {}
_TOUCHING_LOCK = threading.Lock()


def _touch_later(engine: Engine, token: str, now: datetime) -> None:
    key = (id(engine), hash_token(token))
    with _TOUCHING_LOCK:
        if key in _TOUCHING:
            return
        _TOUCHING[key] = _TOUCHER.submit(_touch, engine, token, now, key)


def _touch(engine: Engine, token: str, now: datetime, key: tuple[int, str]) -> None:
    try:
        verify_token(engine, token, now=now)  # checks again and sets last_used_at
    except InvalidTokenError:
        pass  # revoked meanwhile: nothing to record
    except Exception:  # bookkeeping only: never fails a request
        logger.warning("could not record the last use of a token", exc_info=True)
    finally:
        with _TOUCHING_LOCK:
            _TOUCHING.pop(key, None)


def wait_for_token_touches(timeout: float = 10.0) -> None:
    """Wait for the pending ``last_used_at`` refreshes (the app calls it before closing its engine)."""
    with _TOUCHING_LOCK:
        pending = list(_TOUCHING.values())
    wait(pending, timeout=timeout)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # SQLite returns naive UTC


CurrentUser = Annotated[TokenUser, Depends(_current_user)]


@dataclass(frozen=True)
class _Role:
    role: str

    async def __call__(
        self,
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> TokenUser:
        # calls the authentication itself rather than depending on CurrentUser: one level of
        # FastAPI's dependency solving less on every request
        user = await _current_user(request, creds)
        if user.role != self.role:
            raise ApiProblem(
                403, f"this endpoint is for {self.role}s; your token is a {user.role}'s", code="wrong-role"
            )
        return user


CurrentFarmer = Annotated[TokenUser, Depends(_Role("farmer"))]
CurrentInstructor = Annotated[TokenUser, Depends(_Role("instructor"))]
