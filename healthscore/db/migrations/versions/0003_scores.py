"""Current scores and score history (healthscore/db/tables/scores.py).

Revision ID: 0003_scores
Revises: 0001_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_scores"
down_revision = "0001_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_scores",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("previous_score", sa.Float, nullable=True),
        sa.Column("previous_status", sa.String(8), nullable=True),
        sa.Column("score_change", sa.Float, nullable=True),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("categories", postgresql.JSONB, nullable=False),
        sa.Column("indicators", postgresql.JSONB, nullable=False),
        sa.Column("drivers", postgresql.JSONB, nullable=False),
        sa.Column("cause", sa.String(8), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("lifecycle_stage", sa.String(64), nullable=True),
        sa.Column("segment", sa.String(64), nullable=True),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("renewal_date", sa.Date, nullable=True),
        sa.Column("arr_cents", sa.BigInteger, nullable=True),
        sa.Column("licenses", sa.Integer, nullable=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("state_revision", sa.BigInteger, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint("status IN ('red', 'amber', 'green')", name="ck_account_scores_status"),
        sa.CheckConstraint("score >= 0 AND score <= 100", name="ck_account_scores_score"),
    )
    for column in (
        "status",
        "lifecycle_stage",
        "segment",
        "owner",
        "renewal_date",
        "score",
        "score_change",
    ):
        op.create_index(f"ix_account_scores_{column}", "account_scores", [column])
    op.create_table(
        "score_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("old_score", sa.Float, nullable=True),
        sa.Column("old_status", sa.String(8), nullable=True),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("cause", sa.String(8), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drivers", postgresql.JSONB, nullable=False),
        sa.Column("categories", postgresql.JSONB, nullable=False),
        sa.UniqueConstraint(
            "account_id",
            "scored_at",
            "model_version",
            name="uq_score_history_account_id_scored_at_model_version",
        ),
    )


def downgrade() -> None:
    op.drop_table("score_history")
    for column in (
        "score_change",
        "score",
        "renewal_date",
        "owner",
        "segment",
        "lifecycle_stage",
        "status",
    ):
        op.drop_index(f"ix_account_scores_{column}", table_name="account_scores")
    op.drop_table("account_scores")
