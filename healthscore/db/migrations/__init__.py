"""Alembic migrations: a revision tree rooted at ``0001_api_keys`` applied with ``upgrade heads``
(docs/architecture.md, "Database"). No alembic.ini is needed: :func:`alembic_config` builds the
configuration in code.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent

# Alembic keeps the running migration context in module globals, so two migrations must not
# interleave in one process; each event loop gets its own lock (asyncio locks are loop-bound).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def alembic_config() -> Config:
    """Alembic configuration pointing at this package (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revisions() -> tuple[str, ...]:
    """Every head of the revision tree (one per domain branch)."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def _upgrade(connection: Connection, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, target)


async def migrate(url: str, target: str = "heads") -> None:
    """Upgrade the database at ``url`` to ``target`` (every head by default), in one
    transaction: a failing revision leaves the database as it was."""
    loop = asyncio.get_running_loop()
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_upgrade, target)
        finally:
            await engine.dispose()
