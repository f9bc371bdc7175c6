"""Initial schema: declarations, decisions, cases, photos, corrections, users, tokens, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = sa.DateTime(timezone=True)
ACTIVE = "state IN ('open', 'photo_requested', 'photo_received')"


def _id() -> sa.Column:
    return sa.Column("id", BIGID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "declarations",
        _id(),
        sa.Column("campaign", sa.Integer, nullable=False),
        sa.Column("id_parcel", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("code_cultu", sa.String(8), nullable=False),
        sa.Column("code_group", sa.Integer),
        sa.Column("surf_parc", sa.Float),
        sa.Column("pacage", sa.String(9)),
        sa.Column("department", sa.String(3)),
        sa.Column("geometry_wkt", sa.Text),
        sa.Column("crs", sa.String(32)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_declarations"),
        sa.UniqueConstraint(
            "campaign", "id_parcel", "version", name="uq_declarations_campaign_id_parcel_version"
        ),
    )
    op.create_index("ix_declarations_campaign_pacage", "declarations", ["campaign", "pacage"])

    op.create_table(
        "decisions",
        _id(),
        sa.Column("campaign", sa.Integer, nullable=False),
        sa.Column("id_parcel", sa.String(64), nullable=False),
        sa.Column("control", sa.String(32), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("is_current", sa.Boolean, nullable=False),
        sa.Column("flag", sa.String(8), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("explanation_fr", sa.Text, nullable=False),
        sa.Column("explanation_en", sa.Text, nullable=False),
        sa.Column("ruleset_version", sa.String(64), nullable=False),
        sa.Column("marker_version", sa.String(64)),
        sa.Column("model_version", sa.String(64)),
        sa.Column("department", sa.String(3)),
        sa.Column("pacage", sa.String(9)),
        sa.Column("surf_parc", sa.Float),
        sa.Column("run_id", sa.String(64)),
        sa.Column("created_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint(
            "campaign",
            "id_parcel",
            "control",
            "revision",
            name="uq_decisions_campaign_id_parcel_control_revision",
        ),
    )
    op.create_index(
        "uq_decisions_current",
        "decisions",
        ["campaign", "id_parcel", "control"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )
    op.create_index("ix_decisions_campaign_flag", "decisions", ["campaign", "flag"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(256)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("pacage", sa.String(9)),
        sa.Column("department", sa.String(3)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )

    op.create_table(
        "cases",
        sa.Column("case_id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.Integer, nullable=False),
        sa.Column("id_parcel", sa.String(64), nullable=False),
        sa.Column("control", sa.String(32), nullable=False),
        sa.Column("department", sa.String(3)),
        sa.Column("pacage", sa.String(9)),
        sa.Column("surf_parc", sa.Float),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("flag", sa.String(8), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("decision_id", BIGID),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("deadline", sa.Date),
        sa.Column("outcome", sa.String(8)),
        sa.Column("outcome_note", sa.Text),
        sa.Column("assigned_to", sa.Integer),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.Column("closed_at", STAMP),
        sa.PrimaryKeyConstraint("case_id", name="pk_cases"),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], name="fk_cases_decision_id_decisions"),
        sa.ForeignKeyConstraint(["assigned_to"], ["users.id"], name="fk_cases_assigned_to_users"),
    )
    op.create_index(
        "uq_cases_active",
        "cases",
        ["campaign", "id_parcel", "control"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_index("ix_cases_campaign_id_parcel_control", "cases", ["campaign", "id_parcel", "control"])
    op.create_index("ix_cases_department_state", "cases", ["department", "state"])
    op.create_index("ix_cases_state", "cases", ["state"])

    op.create_table(
        "photo_requests",
        _id(),
        sa.Column("case_id", BIGID, nullable=False),
        sa.Column("target_lon", sa.Float),
        sa.Column("target_lat", sa.Float),
        sa.Column("heading_deg", sa.Float),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("deadline", sa.Date),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("fulfilled_at", STAMP),
        sa.PrimaryKeyConstraint("id", name="pk_photo_requests"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name="fk_photo_requests_case_id_cases"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_photo_requests_created_by_users"),
    )
    op.create_index("ix_photo_requests_case_id", "photo_requests", ["case_id"])

    op.create_table(
        "photos",
        _id(),
        sa.Column("request_id", BIGID),
        sa.Column("case_id", BIGID, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("view", sa.String(16)),
        sa.Column("lon", sa.Float),
        sa.Column("lat", sa.Float),
        sa.Column("heading_deg", sa.Float),
        sa.Column("taken_at", STAMP),
        sa.Column("received_at", STAMP, nullable=False),
        sa.Column("device", JSON, nullable=False),
        sa.Column("checks", JSON, nullable=False),
        sa.Column("storage_path", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["photo_requests.id"], name="fk_photos_request_id_photo_requests"
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name="fk_photos_case_id_cases"),
        sa.UniqueConstraint("sha256", name="uq_photos_sha256"),
    )
    op.create_index("ix_photos_request_id", "photos", ["request_id"])
    op.create_index("ix_photos_case_id", "photos", ["case_id"])

    op.create_table(
        "corrections",
        _id(),
        sa.Column("campaign", sa.Integer, nullable=False),
        sa.Column("id_parcel", sa.String(64), nullable=False),
        sa.Column("pacage", sa.String(9)),
        sa.Column("from_declaration_id", BIGID),
        sa.Column("to_declaration_id", BIGID, nullable=False),
        sa.Column("within_window", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("submitted_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_corrections"),
        sa.ForeignKeyConstraint(
            ["from_declaration_id"],
            ["declarations.id"],
            name="fk_corrections_from_declaration_id_declarations",
        ),
        sa.ForeignKeyConstraint(
            ["to_declaration_id"], ["declarations.id"], name="fk_corrections_to_declaration_id_declarations"
        ),
    )
    op.create_index("ix_corrections_campaign_id_parcel", "corrections", ["campaign", "id_parcel"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(128)),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("expires_at", STAMP),
        sa.Column("revoked_at", STAMP),
        sa.Column("last_used_at", STAMP),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "audit_log",
        _id(),
        sa.Column("at", STAMP, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(64)),
        sa.Column("campaign", sa.Integer),
        sa.Column("id_parcel", sa.String(64)),
        sa.Column("control", sa.String(32)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_entity_entity_id", "audit_log", ["entity", "entity_id"])
    op.create_index("ix_audit_log_campaign_id_parcel", "audit_log", ["campaign", "id_parcel"])

    # the audit trail is append-only: the database itself refuses UPDATE and DELETE
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION s3tr_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION s3tr_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS s3tr_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    for table in (
        "audit_log",
        "api_tokens",
        "corrections",
        "photos",
        "photo_requests",
        "cases",
        "users",
        "decisions",
        "declarations",
    ):
        op.drop_table(table)
