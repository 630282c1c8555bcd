"""Alert log, delivery outbox and attempts, rule state (healthscore/db/tables/alerts.py).

Revision ID: 0004_alerts
Revises: 0001_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_alerts"
down_revision = "0001_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("rule_name", sa.String(64), nullable=False),
        sa.Column("old_status", sa.String(8), nullable=True),
        sa.Column("new_status", sa.String(8), nullable=False),
        sa.Column("old_score", sa.Float, nullable=True),
        sa.Column("new_score", sa.Float, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alert", postgresql.JSONB, nullable=False),
        sa.Column("breakdown", postgresql.JSONB, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=True),
        sa.Column("source_offset", sa.BigInteger, nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index("ix_alerts_account_id_raised_at", "alerts", ["account_id", "raised_at"])
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])

    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey(
                "alerts.alert_id",
                ondelete="CASCADE",
                name="fk_alert_deliveries_alert_id_alerts",
            ),
            nullable=False,
        ),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("dead_reason", sa.String(500), nullable=True),
        sa.UniqueConstraint(
            "alert_id", "destination", name="uq_alert_deliveries_alert_id_destination"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead_lettered')",
            name="ck_alert_deliveries_status",
        ),
    )
    op.create_index(
        "ix_alert_deliveries_due",
        "alert_deliveries",
        ["destination", "next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_alert_deliveries_dead",
        "alert_deliveries",
        ["dead_lettered_at"],
        postgresql_where=sa.text("status = 'dead_lettered'"),
    )

    op.create_table(
        "alert_delivery_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.BigInteger,
            sa.ForeignKey(
                "alert_deliveries.id",
                ondelete="CASCADE",
                name="fk_alert_delivery_attempts_delivery_id_alert_deliveries",
            ),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_seconds", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_index(
        "ix_alert_delivery_attempts_delivery_id", "alert_delivery_attempts", ["delivery_id"]
    )

    op.create_table(
        "alert_rule_state",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("state", postgresql.JSONB, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=True),
        sa.Column("source_offset", sa.BigInteger, nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index(
        "ix_alert_rule_state_due_at",
        "alert_rule_state",
        ["due_at"],
        postgresql_where=sa.text("due_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_alert_rule_state_due_at", table_name="alert_rule_state")
    op.drop_table("alert_rule_state")
    op.drop_index("ix_alert_delivery_attempts_delivery_id", table_name="alert_delivery_attempts")
    op.drop_table("alert_delivery_attempts")
    op.drop_index("ix_alert_deliveries_dead", table_name="alert_deliveries")
    op.drop_index("ix_alert_deliveries_due", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_raised_at", table_name="alerts")
    op.drop_index("ix_alerts_account_id_raised_at", table_name="alerts")
    op.drop_table("alerts")
