"""Notification outbox, deliveries and per-user preferences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("pacage", sa.String(9)),
        sa.Column("department", sa.String(3)),
        sa.Column("campaign", sa.Integer),
        sa.Column("id_parcel", sa.String(64)),
        sa.Column("case_id", BIGID),
        sa.Column("request_id", BIGID),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("read_at", STAMP),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_notifications_user_id_users"),
        sa.UniqueConstraint("dedupe_key", name="uq_notifications_dedupe_key"),
    )
    op.create_index("ix_notifications_status", "notifications", ["status"])
    op.create_index("ix_notifications_pacage_created_at", "notifications", ["pacage", "created_at"])
    op.create_index("ix_notifications_request_id", "notifications", ["request_id"])

    op.create_table(
        "notification_deliveries",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("notification_id", BIGID, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(320)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", STAMP, nullable=False),
        sa.Column("lease_until", STAMP),
        sa.Column("lease_token", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", STAMP),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name="fk_notification_deliveries_notification_id_notifications",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_notification_deliveries_user_id_users"),
        sa.UniqueConstraint(
            "notification_id",
            "user_id",
            "channel",
            name="uq_notification_deliveries_notification_id_user_id_channel",
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_notification_deliveries_idempotency_key"),
    )
    op.create_index(
        "ix_notification_deliveries_status_next_attempt_at",
        "notification_deliveries",
        ["status", "next_attempt_at"],
    )

    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(320)),
        sa.Column("email_enabled", sa.Boolean, nullable=False),
        sa.Column("push_enabled", sa.Boolean, nullable=False),
        sa.Column("opted_out", sa.Boolean, nullable=False),
        sa.Column("muted_kinds", JSON, nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_notification_preferences"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_notification_preferences_user_id_users"),
    )


def downgrade() -> None:
    for table in ("notification_preferences", "notification_deliveries", "notifications"):
        op.drop_table(table)
