"""The one SQLAlchemy ``MetaData`` every table is declared on (docs/architecture.md, "Database").

The naming convention gives constraints and indexes deterministic names, so Alembic migrations
can refer to (and drop) them by name on every server. Check constraints have no convention:
name them in full (``ck_<table>_<what>``), as a ``%(constraint_name)s`` template would double the
prefix of names written that way.
"""

from __future__ import annotations

from sqlalchemy import MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
