"""Declarations: the parcel's commune (INSEE code), for the instructors' queue filter.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Until this revision the console read the communes from the chips' index file: parcels without
chips had none, and the queue was filtered in the browser after reading a department's cases
whole (capped at 5,000). The commune now lives with the declaration, the same on every version of
a parcel (the next nightly sync fills it for the parcels already stored), and the API filters on it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("declarations", sa.Column("commune", sa.String(5)))
    op.create_index("ix_declarations_campaign_commune", "declarations", ["campaign", "commune"])


def downgrade() -> None:
    op.drop_index("ix_declarations_campaign_commune", table_name="declarations")
    # A plain DROP COLUMN (SQLite >= 3.35 has it): a batch copy of the table would have to drop
    # ``declarations``, which the corrections reference.
    op.drop_column("declarations", "commune")
