"""The alert log, the delivery outbox and the rules' per-account state (migration
``0004_alerts``). The alerts service writes all four; the api reads them
(``services/api/routes_alerts.py``).

``alerts``: one row per raised alert (``alert_id`` is stable: re-evaluating the same
``health.scores`` record yields the same id, so inserts are ``ON CONFLICT DO NOTHING``).
``alert`` is the ``schemas.messages.AlertRaised`` JSON, ``breakdown`` the account's categories and
indicators at the time (sent to CRM webhooks).

``alert_deliveries``: the outbox, one row per alert and destination (``health.alerts`` included).
``status`` is ``pending`` until ``delivered`` or ``dead_lettered``; ``webhook_id`` is the stable
idempotency id every attempt reuses; workers claim due rows (``next_attempt_at``) with a lease
(``lease_until``) so a crashed worker's rows are picked up again after the lease.

``alert_delivery_attempts``: one row per attempt (status code, error, latency, outcome).

``alert_rule_state``: the rules' memory per account (cooldowns, score history, condition flags;
``services.alerts.rules.RuleState`` as JSON), the ``health.scores`` position it reflects
(``source_partition``/``source_offset``, so a redelivered record is not evaluated twice) and
``due_at``, when time alone may make a rule fire.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from healthscore.db.base import metadata

DELIVERY_STATUSES = ("pending", "delivered", "dead_lettered")
ATTEMPT_OUTCOMES = ("delivered", "retry", "dead_lettered")

alerts = sa.Table(
    "alerts",
    metadata,
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
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.Index("ix_alerts_account_id_raised_at", "account_id", "raised_at"),
    sa.Index("ix_alerts_raised_at", "raised_at"),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "alert_id",
        sa.String(64),
        sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"),
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
    sa.UniqueConstraint("alert_id", "destination"),
    sa.CheckConstraint(
        "status IN ('pending', 'delivered', 'dead_lettered')", name="ck_alert_deliveries_status"
    ),
    sa.Index(
        "ix_alert_deliveries_due",
        "destination",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_alert_deliveries_dead",
        "dead_lettered_at",
        postgresql_where=sa.text("status = 'dead_lettered'"),
    ),
)

alert_delivery_attempts = sa.Table(
    "alert_delivery_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "delivery_id",
        sa.BigInteger,
        sa.ForeignKey("alert_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("latency_seconds", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Index("ix_alert_delivery_attempts_delivery_id", "delivery_id"),
)

alert_rule_state = sa.Table(
    "alert_rule_state",
    metadata,
    sa.Column("account_id", sa.String(128), primary_key=True),
    sa.Column("state", postgresql.JSONB, nullable=False),
    sa.Column("source_partition", sa.Integer, nullable=True),
    sa.Column("source_offset", sa.BigInteger, nullable=True),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.Index(
        "ix_alert_rule_state_due_at", "due_at", postgresql_where=sa.text("due_at IS NOT NULL")
    ),
)
