"""Current scores and score history, written by the scorer (migration ``0003_scores``).

The scorer is the only writer; the api reads both tables (account list, account detail, model
preview). Column names are a contract with the api: keep them stable.

``account_scores``: one row per account, the latest state the scorer holds for it.

- ``account_id`` (pk).
- ``score`` (0-100, one decimal), ``status`` (red | amber | green): the latest score.
- ``previous_score`` / ``previous_status``: the score before the latest change (NULL for the
  first score of an account); ``score_change`` = score - previous_score (NULL when no previous),
  for "sort by score change".
- ``model_id``, ``model_version``: the model that produced ``score`` (built-in defaults have
  version 0).
- ``categories``, ``indicators``, ``drivers`` (jsonb): the breakdown and the drivers of the
  latest change, exactly the ``categories``/``indicators``/``drivers`` lists of
  ``schemas.messages.ScoreChanged``.
- ``cause`` (event | time | model): what triggered the latest change.
- ``name``, ``lifecycle_stage``, ``segment``, ``owner``, ``renewal_date``, ``arr_cents``,
  ``licenses``: the account profile as the scorer's state knows it (updated on every applied
  event, not only when the score moves).
- ``state`` (bytea): the latest ``healthscore.engine.AccountState.to_bytes()`` of the account, so
  the api's model preview can rescore with a draft model through the same engine.
  ``state_revision``: the scorer's per-account write counter; every upsert only overwrites a row
  whose ``state_revision`` is lower or equal, so rows never go backwards when batches from an old
  and a new owner of a partition (after a rebalance) or a redelivery arrive out of order.
- ``scored_at``: when the latest score was computed (the scorer's clock); ``event_time``: the
  occurred_at of the event that caused it (NULL for time and model causes);
  ``updated_at``: when this row was last written.

``score_history``: one row per score change (the same records as the ``health.scores`` topic),
unique on (account_id, scored_at, model_version) so redelivered writes are no-ops
(``INSERT .. ON CONFLICT DO NOTHING``). Read it by account, newest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from healthscore.db.base import metadata

STATUSES = ("red", "amber", "green")
CAUSES = ("event", "time", "model")

account_scores = sa.Table(
    "account_scores",
    metadata,
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
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.CheckConstraint("status IN ('red', 'amber', 'green')", name="ck_account_scores_status"),
    sa.CheckConstraint("score >= 0 AND score <= 100", name="ck_account_scores_score"),
    sa.Index("ix_account_scores_status", "status"),
    sa.Index("ix_account_scores_lifecycle_stage", "lifecycle_stage"),
    sa.Index("ix_account_scores_segment", "segment"),
    sa.Index("ix_account_scores_owner", "owner"),
    sa.Index("ix_account_scores_renewal_date", "renewal_date"),
    sa.Index("ix_account_scores_score", "score"),
    sa.Index("ix_account_scores_score_change", "score_change"),
)

score_history = sa.Table(
    "score_history",
    metadata,
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
    sa.UniqueConstraint("account_id", "scored_at", "model_version"),
)
