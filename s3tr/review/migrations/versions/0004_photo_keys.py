"""Photos: an exact duplicate image is stored (not refused); Idempotency-Key, uploader and
perceptual hash move out of ``photos.device`` into indexed columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

The issue asks that a photo failing a check is kept and shown to the instructor with its failed
checks, the duplicate check included: ``photos.sha256`` loses its unique constraint (it keeps
an index, for the exact-duplicate lookup). An upload retried with the same ``Idempotency-Key``
must return the first photo even when two retries race: a unique index on
``(uploaded_by, idempotency_key)`` makes the second insert fail instead of storing twice.
Downgrading restores the unique constraint on ``sha256``, which fails while duplicates exist.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_constraint("uq_photos_sha256", type_="unique")
        batch.add_column(sa.Column("idempotency_key", sa.String(128)))
        batch.add_column(sa.Column("uploaded_by", sa.Integer))
        batch.add_column(sa.Column("phash", sa.String(64)))
        batch.create_foreign_key("fk_photos_uploaded_by_users", "users", ["uploaded_by"], ["id"])
    op.create_index("ix_photos_sha256", "photos", ["sha256"])
    # photos stored before this revision keep their key, uploader and hash in ``device``
    photos = sa.table(
        "photos",
        sa.column("id", sa.Integer),
        sa.column("device", sa.JSON),
        sa.column("idempotency_key", sa.String),
        sa.column("uploaded_by", sa.Integer),
        sa.column("phash", sa.String),
    )
    conn = op.get_bind()
    seen: set[tuple[int, str]] = set()
    for row in conn.execute(sa.select(photos.c.id, photos.c.device).order_by(photos.c.id)).all():
        device = row.device or {}
        key, user = device.get("idempotency_key"), device.get("uploaded_by")
        if key is not None and user is not None and (user, key) in seen:
            key = None  # an earlier schema allowed a key twice (in two cases): the first keeps it
        if key is not None and user is not None:
            seen.add((user, key))
        if key or user or device.get("phash"):
            conn.execute(
                photos.update()
                .where(photos.c.id == row.id)
                .values(
                    idempotency_key=None if key is None else str(key)[:128],
                    uploaded_by=user if isinstance(user, int) else None,
                    phash=(device.get("phash") or None),
                )
            )
    op.create_index(
        "ix_photos_uploaded_by_idempotency_key", "photos", ["uploaded_by", "idempotency_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_photos_uploaded_by_idempotency_key", table_name="photos")
    op.drop_index("ix_photos_sha256", table_name="photos")
    with op.batch_alter_table("photos") as batch:
        batch.drop_constraint("fk_photos_uploaded_by_users", type_="foreignkey")
        batch.drop_column("phash")
        batch.drop_column("uploaded_by")
        batch.drop_column("idempotency_key")
        batch.create_unique_constraint("uq_photos_sha256", ["sha256"])
