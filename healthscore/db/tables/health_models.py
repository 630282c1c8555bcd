"""Health models and their published versions (migrations ``0002_health_models`` and
``0005_health_model_reservations``).

``health_models``: one row per model id. It holds the model's current draft (``draft``, any
mapping the author saved: a draft may be invalid while it is being written) and the number of
its latest published version (``latest_version``, 0 while nothing is published).
``reserved_version`` is the highest version number ever handed out for the model: a publish
reserves its numbers in a committed transaction before it talks to Kafka, so an attempt that
fails burns its numbers and a retry always announces a higher version than any record the
failed attempt may still have left on ``health.models`` (scorers ignore versions they have seen
or passed). Published version numbers can therefore skip.

``health_model_versions``: the immutable published versions. A row is never updated or deleted;
a rollback publishes an earlier version's document again as a new version and records
``rolled_back_from``. ``origin`` says why a version exists: ``publish`` (a draft was published),
``rollback``, or ``default_transfer`` (publishing another model with ``default: true`` published
this model again with ``default: false``, so exactly one published model is the default).
``name`` and ``is_default`` repeat the document's fields for listing.

Publishing holds ``PUBLISH_LOCK_KEY`` (a session-level advisory lock) from planning to commit,
so version numbers and the single-default rule never race.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from healthscore.db.base import metadata

# pg_advisory_lock key serialising every publish and rollback ("hsmodels" in ASCII).
PUBLISH_LOCK_KEY = 0x68736D6F64656C73

VERSION_ORIGINS = ("publish", "rollback", "default_transfer")

health_models = sa.Table(
    "health_models",
    metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column("draft", postgresql.JSONB, nullable=True),
    sa.Column("draft_updated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("draft_updated_by", sa.String(128), nullable=True),
    sa.Column("latest_version", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("reserved_version", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.CheckConstraint("latest_version >= 0", name="ck_health_models_latest_version"),
)

health_model_versions = sa.Table(
    "health_model_versions",
    metadata,
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
