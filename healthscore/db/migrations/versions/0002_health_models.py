"""Health models: drafts and immutable published versions (healthscore/db/tables/health_models.py).

Revision ID: 0002_health_models
Revises: 0001_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_health_models"
down_revision = "0001_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_models",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("draft", postgresql.JSONB, nullable=True),
        sa.Column("draft_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draft_updated_by", sa.String(128), nullable=True),
        sa.Column("latest_version", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint("latest_version >= 0", name="ck_health_models_latest_version"),
    )
    op.create_table(
        "health_model_versions",
        sa.Column(
            "model_id",
            sa.String(64),
            sa.ForeignKey("health_models.model_id", name="fk_health_model_versions_model_id"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("document", postgresql.JSONB, nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("rolled_back_from", sa.Integer, nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(128), nullable=True),
        sa.CheckConstraint("version >= 1", name="ck_health_model_versions_version"),
        sa.CheckConstraint(
            "origin IN ('publish', 'rollback', 'default_transfer')",
            name="ck_health_model_versions_origin",
        ),
    )


def downgrade() -> None:
    op.drop_table("health_model_versions")
    op.drop_table("health_models")
