"""Engines and sessions for the review database (SQLite by default, PostgreSQL in production).

Nothing is connected at import time: callers build an engine with :func:`make_engine` and pass
it on. SQLite gets WAL journaling (readers do not block the nightly writer), enforced foreign
keys and a busy timeout; write transactions that read-then-write (the nightly sync, case
transitions) open with ``BEGIN IMMEDIATE`` through :func:`write_connection` so that two writers
queue instead of deadlocking.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from s3tr.errors import ConfigError

__all__ = [
    "DB_FILENAME",
    "db_url_for",
    "downgrade",
    "is_sqlite",
    "make_engine",
    "refresh_statistics",
    "session_scope",
    "upgrade",
    "write_connection",
]

logger = logging.getLogger(__name__)

DB_FILENAME = "s3tr.db"
#: A sync that writes at least this many rows refreshes the planner's statistics of what it wrote.
ANALYZE_AFTER_ROWS = 10_000
_WRITE_OPTION = "s3tr_write"


def db_url_for(workdir: str | Path | None = None, db: str | None = None) -> str:
    """The database URL to use: ``db`` when given, else SQLite in ``<workdir>/s3tr.db``.

    Parameters
    ----------
    workdir
        The s3tr working directory (default ``./s3tr-work``).
    db
        An explicit SQLAlchemy URL (``postgresql+psycopg://user@host/db``, ``sqlite:///file``);
        a PostgreSQL URL without driver gets ``+psycopg``.
    """
    if db:
        url = db
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    root = Path(workdir if workdir is not None else "s3tr-work").resolve()
    return f"sqlite:///{root / DB_FILENAME}"


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    """Whether the engine (or connection) talks to SQLite."""
    return engine_or_conn.dialect.name == "sqlite"


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # let SQLAlchemy (not the driver) emit BEGIN, so we can choose BEGIN IMMEDIATE
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for a review database URL.

    SQLite files get their parent directory created, WAL mode and foreign keys; PostgreSQL
    URLs must use the ``psycopg`` (v3) driver (``postgresql+psycopg://``).

    Raises
    ------
    ConfigError
        When the URL cannot be parsed or names an unsupported backend.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo, connect_args={"timeout": 60})
        _setup_sqlite(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    raise ConfigError(
        f"unsupported database backend {backend!r} in {url!r}: use sqlite:/// or postgresql+psycopg://"
    )


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def refresh_statistics(engine: Engine, tables: Sequence[str], *, rows_written: int) -> bool:
    """Refresh the query planner's statistics of ``tables`` after a large write (``ANALYZE``).

    Until autovacuum's next pass, PostgreSQL plans queries on the statistics of the tables before the
    write: after a first national load that is an empty table, and a commune page of the instructors'
    queue took 13 s instead of 36 ms (``benchmarks/review_queue.py``). SQLite samples (``analysis_limit``)
    so that a large file is not read whole. Below ``ANALYZE_AFTER_ROWS`` rows nothing is done. The data is
    already committed, so a failure here is logged, never raised.

    Returns
    -------
    bool
        Whether the statistics were refreshed.
    """
    if rows_written < ANALYZE_AFTER_ROWS:
        return False
    try:
        with engine.connect() as conn:
            if is_sqlite(conn):
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            for table in tables:
                conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(table)}")
            conn.commit()
    except Exception as exc:  # statistics are an optimisation; the sync has landed
        logger.warning("could not refresh the statistics of %s: %s", ", ".join(tables), exc)
        return False
    logger.info("refreshed the planner statistics of %s after %d rows", ", ".join(tables), rows_written)
    return True


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session committed when the block succeeds and rolled back when it raises.

    ``write=True`` takes the SQLite write lock at the start of the transaction (use it for
    read-modify-write work such as a case transition).
    """
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session:
        if write:
            session.connection(execution_options={_WRITE_OPTION: True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Migrate the database up (see :func:`s3tr.review.migrate.upgrade`; re-exported for convenience)."""
    from s3tr.review.migrate import upgrade as _upgrade

    _upgrade(url, revision)


def downgrade(url: str | Engine, revision: str = "base") -> None:
    """Migrate the database down (see :func:`s3tr.review.migrate.downgrade`)."""
    from s3tr.review.migrate import downgrade as _downgrade

    _downgrade(url, revision)
