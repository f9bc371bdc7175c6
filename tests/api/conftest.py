"""Fixtures of the API tests: a tiny demo season run once, copied per test, and a test client.

The pipeline runs once per session (about 5 s); each test gets its own copy of the workdir
(database + series stores), so tests can write freely. The app's clock starts on a day of the
demo campaign inside the correction window (:class:`~tests.api.support.MovableClock`).
The ``any_env`` fixture runs a test on SQLite and on the PostgreSQL server at 127.0.0.1:5432
(skipped when ``S3TR_SKIP_POSTGRES=1`` and the server is down).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from s3tr.api import ApiSettings, create_app
from s3tr.review.database import db_url_for, make_engine
from tests.api.support import Env, MovableClock, make_users

PG = f"{os.environ.get('S3TR_PG_USER', 'postgres')}@{os.environ.get('S3TR_PG_HOST', '127.0.0.1')}:" + (
    os.environ.get("S3TR_PG_PORT", "5432")
)


@pytest.fixture(scope="session")
def demo_season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from s3tr.demo import generate_season

    root = tmp_path_factory.mktemp("api-season") / "demo"
    generate_season(
        root, seed=3, n_parcels=80, area_size_m=2000.0, start=date(2025, 4, 1), end=date(2025, 6, 30)
    )
    return root


def _run(season: Path, work: Path, db_url: str | None = None) -> None:
    from s3tr.demo.runner import demo_run_config
    from s3tr.nightly.pipeline import run_pipeline

    result = run_pipeline(demo_run_config(season, workers=1), workdir=work, db_url=db_url)
    assert result.sync is not None and result.sync.cases_opened > 0


@pytest.fixture(scope="session")
def base_workdir(demo_season: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("api-base") / "work"
    _run(demo_season, work)
    return work


def _env(url: str, work: Path) -> Iterator[Env]:
    engine = make_engine(url)
    tokens, ids = make_users(engine)
    clock = MovableClock()
    app = create_app(db_url=url, workdir=work, settings=ApiSettings(clock=clock, max_upload_bytes=2_000_000))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, engine, work, tokens, ids, clock)
    engine.dispose()


@pytest.fixture
def env(base_workdir: Path, tmp_path: Path) -> Iterator[Env]:
    work = tmp_path / "work"
    shutil.copytree(base_workdir, work)
    yield from _env(db_url_for(work), work)


@pytest.fixture
def pg_env(demo_season: Path, base_workdir: Path, tmp_path: Path) -> Iterator[Env]:
    """The demo season synced into a fresh PostgreSQL database (dropped afterwards)."""
    import psycopg

    try:
        admin = psycopg.connect(f"postgresql://{PG}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {PG} ({exc}); set S3TR_SKIP_POSTGRES=1 to skip"
        if os.environ.get("S3TR_SKIP_POSTGRES") == "1":
            pytest.skip(message)
        pytest.fail(message)
    name = f"s3tr_api_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG}/{name}"
    try:
        work = tmp_path / "work"
        shutil.copytree(base_workdir / "series", work / "series")  # the series are the same
        _run(demo_season, work, url)
        yield from _env(url, work)
    finally:
        with psycopg.connect(f"postgresql://{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_env(request: pytest.FixtureRequest) -> Env:
    """``env`` on SQLite, then on PostgreSQL."""
    return request.getfixturevalue("env" if request.param == "sqlite" else "pg_env")
