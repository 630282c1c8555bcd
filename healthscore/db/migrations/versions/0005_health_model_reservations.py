"""health_models.reserved_version: version numbers handed out by publishes, so a failed publish
burns its numbers and a retry always announces a higher version (healthscore/db/tables/
health_models.py explains why).

Revision ID: 0005_health_model_reservations
Revises: 0002_health_models
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_health_model_reservations"
down_revision = "0002_health_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "health_models",
        sa.Column("reserved_version", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    op.drop_column("health_models", "reserved_version")
