"""Nightly runs and their work items (plan, status, attempts, errors).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nightly_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("started_at", STAMP, nullable=False),
        sa.Column("finished_at", STAMP),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("summary", JSON),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_nightly_runs"),
    )
    op.create_table(
        "work_items",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("tile", sa.String(16), nullable=False),
        sa.Column("acquisition_id", sa.String(128), nullable=False),
        sa.Column("acquired_at", STAMP, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("started_at", STAMP),
        sa.Column("finished_at", STAMP),
        sa.Column("timings", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_work_items"),
        sa.ForeignKeyConstraint(["run_id"], ["nightly_runs.id"], name="fk_work_items_run_id_nightly_runs"),
        sa.UniqueConstraint(
            "run_id", "tile", "acquisition_id", name="uq_work_items_run_id_tile_acquisition_id"
        ),
    )
    op.create_index("ix_work_items_tile_acquisition_id", "work_items", ["tile", "acquisition_id"])
    op.create_index("ix_work_items_status", "work_items", ["status"])


def downgrade() -> None:
    op.drop_index("ix_work_items_status", table_name="work_items")
    op.drop_index("ix_work_items_tile_acquisition_id", table_name="work_items")
    op.drop_table("work_items")
    op.drop_table("nightly_runs")
