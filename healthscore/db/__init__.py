"""PostgreSQL adapters shared by every service: the metadata, the engine factory, migrations."""

from healthscore.db.base import metadata
from healthscore.db.engine import (
    create_database,
    create_db_engine,
    create_session_maker,
    database_url,
    drop_database,
)

__all__ = [
    "create_database",
    "create_db_engine",
    "create_session_maker",
    "database_url",
    "drop_database",
    "metadata",
]
