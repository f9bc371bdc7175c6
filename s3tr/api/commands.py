"""Command-line glue: ``s3tr accounts ...`` and ``s3tr serve``.

The lead registers them in :mod:`s3tr.cli` with ``app.add_typer(accounts_app, name="accounts")``
and a ``serve`` command calling :func:`serve`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import update

from s3tr.review.database import db_url_for, make_engine, write_connection
from s3tr.review.migrate import upgrade
from s3tr.review.models import ApiToken, AuditLog, table_of
from s3tr.review.users import create_user, issue_token, revoke_token

__all__ = ["accounts_app", "serve"]

accounts_app = typer.Typer(help="API accounts: farmers, instructors, tokens.", no_args_is_help=True)

WorkdirOpt = Annotated[
    Path | None, typer.Option("--workdir", help="Working directory (SQLite database inside).")
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (overrides --workdir).")]


def _engine(workdir: Path | None, db: str | None):  # type: ignore[no-untyped-def]
    url = db_url_for(workdir, db)
    upgrade(url)  # idempotent: a new workdir gets its schema
    return make_engine(url)


@accounts_app.command("add-farmer")
def add_farmer(
    pacage: Annotated[str, typer.Option("--pacage", help="The farm's 9-digit PACAGE number.")],
    workdir: WorkdirOpt = None,
    db: DbOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
) -> None:
    """Create a farmer account and print its new token (shown once)."""
    if not re.fullmatch(r"\d{9}", pacage):
        raise typer.BadParameter(f"PACAGE must be 9 digits, got {pacage!r}", param_hint="--pacage")
    engine = _engine(workdir, db)
    try:
        user_id = create_user(
            engine,
            f"farmer-{pacage}-{datetime.now(UTC):%Y%m%d%H%M%S%f}",
            role="farmer",
            pacage=pacage,
            display_name=name,
        )
        typer.echo(issue_token(engine, user_id, label="cli"))
    finally:
        engine.dispose()


@accounts_app.command("add-instructor")
def add_instructor(
    department: Annotated[str, typer.Option("--department", help="Department code, e.g. 86.")],
    workdir: WorkdirOpt = None,
    db: DbOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
) -> None:
    """Create an instructor account of a department and print its new token (shown once)."""
    if not re.fullmatch(r"\d{2,3}|2[AB]", department):
        raise typer.BadParameter(
            f"department must be a code like 86 or 2A, got {department!r}", param_hint="--department"
        )
    engine = _engine(workdir, db)
    try:
        user_id = create_user(
            engine,
            f"instructor-{department}-{datetime.now(UTC):%Y%m%d%H%M%S%f}",
            role="instructor",
            department=department,
            display_name=name,
        )
        typer.echo(issue_token(engine, user_id, label="cli"))
    finally:
        engine.dispose()


def revoke_user_tokens(engine, user_id: int, *, actor: str = "admin") -> int:  # type: ignore[no-untyped-def]
    """Revoke every active token of a user; returns how many."""
    t = table_of(ApiToken)
    now = datetime.now(UTC)
    with write_connection(engine) as conn:
        n = conn.execute(
            update(t).where(t.c.user_id == user_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        if n:
            conn.execute(
                table_of(AuditLog)
                .insert()
                .values(
                    at=now,
                    actor=actor,
                    action="token_revoked",
                    entity="user",
                    entity_id=str(user_id),
                    details={"tokens": int(n)},
                )
            )
    return int(n)


@accounts_app.command("revoke")
def revoke(
    token: Annotated[str | None, typer.Option("--token", help="The token to revoke.")] = None,
    user: Annotated[int | None, typer.Option("--user", help="Revoke every token of this user id.")] = None,
    workdir: WorkdirOpt = None,
    db: DbOpt = None,
) -> None:
    """Revoke a token, or every token of a user."""
    if (token is None) == (user is None):
        raise typer.BadParameter("give exactly one of --token or --user")
    engine = _engine(workdir, db)
    try:
        if token is not None:
            if not revoke_token(engine, token):
                typer.echo("no such active token", err=True)
                raise typer.Exit(1)
            typer.echo("revoked 1 token", err=True)
        else:
            n = revoke_user_tokens(engine, int(user))  # type: ignore[arg-type]
            if not n:
                typer.echo(f"user {user} has no active token", err=True)
                raise typer.Exit(1)
            typer.echo(f"revoked {n} token(s)", err=True)
    finally:
        engine.dispose()


def serve(
    workdir: Path | None = None,
    db: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int | None = None,
    log_level: str = "info",
) -> None:
    """Run the API with uvicorn on ``host:port`` (blocks until stopped).

    The database is ``db`` when given, else SQLite in ``workdir``; it is migrated to the head
    first. Photos are stored under ``<workdir>/photos``. ``workers`` server processes (default:
    one per CPU core, each with its own engine) share the port; uvicorn runs on uvloop with
    the httptools parser (both dependencies of s3tr).
    """
    import os

    import uvicorn

    url = db_url_for(workdir, db)
    upgrade(url)
    root = Path(workdir if workdir is not None else "s3tr-work").resolve()
    os.environ["S3TR_API_DB_URL"] = url
    os.environ["S3TR_API_WORKDIR"] = str(root)
    uvicorn.run(
        "s3tr.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers or os.cpu_count() or 1,
        log_level=log_level,
        # "auto" picks uvloop and httptools when installed and falls back to asyncio and h11
        loop="auto",
        http="auto",
    )
