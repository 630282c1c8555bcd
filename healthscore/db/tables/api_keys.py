"""The ``api_keys`` table (migration ``0001_api_keys``). Only a digest of each secret is stored."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from healthscore.db.base import metadata

api_keys = sa.Table(
    "api_keys",
    metadata,
    # Public lookup prefix, the middle part of ``hs_<key_id>_<secret>``.
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
    sa.Column("scopes", postgresql.ARRAY(sa.String(32)), nullable=False),
    # Default ``source`` of the events ingested with this key (the key's name when empty).
    sa.Column("source", sa.String(64), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("octet_length(secret_sha256) = 32", name="ck_api_keys_digest_length"),
    # One active key per name; revoked keys keep their name for the audit trail.
    sa.Index(
        "ix_api_keys_name_active",
        "name",
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    ),
)
