"""Alembic environment of the review database.

Run through :mod:`s3tr.review.migrate` (``upgrade(url)``), which passes an open connection in
``config.attributes["connection"]``; running ``alembic`` by hand with ``sqlalchemy.url`` set in
the config works too.
"""

from __future__ import annotations

from alembic import context

from s3tr.review.database import make_engine
from s3tr.review.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTER
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "set sqlalchemy.url, or run the migrations through s3tr.review.migrate.upgrade(url)"
        )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
