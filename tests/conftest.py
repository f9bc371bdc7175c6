"""Shared fixtures: where the real data lives, and the review databases.

Database tests run on SQLite and on the PostgreSQL server at 127.0.0.1:5432. The PostgreSQL
database is created once per test session under a unique name (and dropped at the end); each
test gets an empty schema migrated to head, and the schema is downgraded to base afterwards, so
tests are isolated and the migrations run both ways every time. If the server is down,
PostgreSQL tests fail with a clear message, or are skipped when ``S3TR_SKIP_POSTGRES=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3tr.review.database import make_engine
from s3tr.review.migrate import downgrade, upgrade

REPO = Path(__file__).resolve().parents[1]


def _realdata_root() -> Path:
    env = os.environ.get("S3TR_REALDATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of ``../shared/data``; skips (or fails under ``S3TR_REQUIRE_REALDATA=1``) when absent."""
    root = _realdata_root()
    if not root.is_dir():
        if os.environ.get("S3TR_REQUIRE_REALDATA") == "1":
            pytest.fail(f"real data required but not found at {root} (set S3TR_REALDATA)")
        pytest.skip(f"real data not found at {root}")
    return root


PG_HOST = os.environ.get("S3TR_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("S3TR_PG_PORT", "5432"))
PG_USER = os.environ.get("S3TR_PG_USER", "postgres")


def _admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session (dropped at the end)."""
    import psycopg

    try:
        admin = _admin()
    except psycopg.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at {PG_USER}@{PG_HOST}:{PG_PORT} ({exc}). Start it (.ci/run does), "
            "or set S3TR_SKIP_POSTGRES=1 to run the SQLite half only."
        )
        if os.environ.get("S3TR_SKIP_POSTGRES") == "1":
            pytest.skip(message)
        pytest.fail(message)
    name = f"s3tr_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, SQLite or PostgreSQL (the schema is not created)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's3tr.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    """An engine on a database migrated to head; downgraded to base (and disposed) afterwards."""
    eng = make_engine(db_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        downgrade(db_url, "base")


# --------------------------------------------------------------------------- decisions to sync
