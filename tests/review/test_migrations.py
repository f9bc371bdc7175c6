"""Migrations go up from empty to head and back down to base, and match the ORM models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from s3tr.errors import DatabaseError
from s3tr.review import check_schema, current_revision, downgrade, head_revision, make_engine, upgrade
from s3tr.review.models import Base


def test_upgrade_from_empty_then_downgrade_to_base(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        with pytest.raises(DatabaseError, match="s3tr db upgrade"):
            check_schema(engine)
        upgrade(db_url)
        assert current_revision(engine) == head_revision()
        check_schema(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        # the migrations create exactly what the models describe (types, indexes, constraints)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
        upgrade(db_url)  # at head already: a no-op, not an error
        downgrade(db_url, "base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) & set(Base.metadata.tables) == set()
        upgrade(db_url)  # and up again from base
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
        downgrade(db_url, "base")


def test_audit_log_is_append_only(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, entity, details) "
                "VALUES (CURRENT_TIMESTAMP, 'tester', 'test', 'none', '{}')"
            )
        )
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["tester"]


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError, match="cannot migrate"):
        upgrade("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
