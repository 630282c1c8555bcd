"""Engine factory and database administration helpers (PostgreSQL via asyncpg).

Services build their engine in their composition root with :func:`create_db_engine` and dispose
of it on shutdown; nothing here creates an engine at import time.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_db_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (``postgresql+asyncpg://…``).

    ``pool_pre_ping`` lets a service survive a PostgreSQL restart without serving errors from
    stale pooled connections; keyword arguments override the defaults (tests pass
    ``poolclass=NullPool``). ``hide_parameters`` keeps bound values (alert bodies, account names,
    owners) out of the error messages that services log.
    """
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    options.update(kwargs)
    return create_async_engine(url, **options)


def create_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no implicit refresh I/O)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` instead (password kept)."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _checked_name(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
    return name


async def _execute_autocommit(server_url: str, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def database_exists(server_url: str, name: str) -> bool:
    engine = create_async_engine(server_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
    finally:
        await engine.dispose()
    return found is not None


async def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server ``server_url`` connects to; return its URL."""
    await _execute_autocommit(server_url, f'CREATE DATABASE "{_checked_name(name)}"')
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting any session still using it."""
    await _execute_autocommit(
        server_url, f'DROP DATABASE IF EXISTS "{_checked_name(name)}" WITH (FORCE)'
    )
