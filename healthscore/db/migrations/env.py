"""Alembic environment for Healthscore (online migrations only, async engines).

Normally run through :func:`healthscore.db.migrations.migrate`, which hands over an open
connection in ``config.attributes["connection"]``. When Alembic's own command line drives it
(``alembic -c <ini> ...`` for ``revision --autogenerate``), the URL comes from the config's
``sqlalchemy.url`` or ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from healthscore.db.tables import load_all

config = context.config
target_metadata = load_all()


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; use `healthscore migrate`")

shared = config.attributes.get("connection")
if shared is not None:
    run_with(shared)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or DATABASE_URL")
    asyncio.run(run_standalone(url))
