"""API keys: the root of the revision tree (docs/architecture.md, "Database").

Only a SHA-256 digest of each key's secret is stored; ``key_id`` is the public lookup prefix that
appears in the token (``hs_<key_id>_<secret>``), so authentication is one indexed lookup plus a
constant-time digest comparison.

Revision ID: 0001_api_keys
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_api_keys"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("octet_length(secret_sha256) = 32", name="ck_api_keys_digest_length"),
    )
    op.create_index(
        "ix_api_keys_name_active",
        "api_keys",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_api_keys_name_active", table_name="api_keys")
    op.drop_table("api_keys")
