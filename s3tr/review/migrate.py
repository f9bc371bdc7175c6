"""Programmatic Alembic migrations of the review database (no ``alembic.ini`` needed)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from s3tr.errors import DatabaseError
from s3tr.review.database import make_engine

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "check_schema",
    "current_revision",
    "downgrade",
    "head_revision",
    "upgrade",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` pointing at the package's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with s3tr."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError(f"no migration found in {MIGRATIONS_DIR}")
    return head


def _run(url: str | Engine, fn, revision: str) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(url) if isinstance(url, str) else url
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            fn(cfg, revision)
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot migrate database {engine.url.render_as_string(hide_password=True)}: {exc.orig}; "
            "check that the server is up and the URL (--db) is right"
        ) from exc
    finally:
        if isinstance(url, str):
            engine.dispose()


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (a URL or an engine) up to ``revision`` (default: head)."""
    logger.info("upgrading review database to %s", revision)
    _run(url, command.upgrade, revision)


def downgrade(url: str | Engine, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (``"base"`` drops every s3tr table)."""
    logger.info("downgrading review database to %s", revision)
    _run(url, command.downgrade, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise :class:`~s3tr.errors.DatabaseError` unless the database is at the head revision.

    The message says which command brings it up to date.
    """
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise DatabaseError(
            f"review database {engine.url.render_as_string(hide_password=True)} is unreachable: {exc.orig}"
        ) from exc
    head = head_revision()
    if current != head:
        raise DatabaseError(
            f"review database {engine.url.render_as_string(hide_password=True)} is at revision "
            f"{current or 'none'}, expected {head}: run `s3tr db upgrade` with the same --db/--workdir"
        )
