"""Shared fixtures: real Kafka and PostgreSQL for integration and e2e tests.

Session fixtures ``kafka_bootstrap`` and ``postgres_url`` reuse the servers named by
``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set (``. .stack.env`` from ``healthscore
local``, docker compose, a real cluster); otherwise they start ``healthscore.local`` servers once
per session. They are only set up when a test asks for them, so unit tests need nothing. An
unreachable or unstartable server is a test error, never a skip (in CI or anywhere else).

Per-test fixtures: ``topics`` (a ``Topics`` with a unique prefix, every topic created with
``PARTITIONS`` partitions and deleted afterwards), ``database_url`` (a fresh database migrated to
every head, dropped afterwards) and ``local_kafka`` (a private broker a test may stop and start).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from healthscore.local import LocalKafka
from healthscore.topics import Topics

PARTITIONS = 3
REACHABLE_TIMEOUT_S = 20.0


async def _check_kafka(bootstrap: str) -> None:
    from healthscore.local.kafka import broker_answers

    try:
        await asyncio.wait_for(broker_answers(bootstrap), REACHABLE_TIMEOUT_S)
    except TimeoutError:
        raise RuntimeError(
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} does not answer; unset it to let the tests "
            "start their own broker"
        ) from None


async def _check_postgres(url: str) -> None:
    from sqlalchemy import text

    from healthscore.db.engine import create_db_engine

    engine = create_db_engine(url, pool_pre_ping=False)
    try:
        async with asyncio.timeout(REACHABLE_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(
            f"DATABASE_URL server does not answer ({exc!r}); unset DATABASE_URL to let the "
            "tests start their own PostgreSQL"
        ) from exc
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_bootstrap() -> AsyncIterator[str]:
    """Bootstrap servers of a running broker (auto topic creation off when we start it)."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        await _check_kafka(configured)
        yield configured
        return
    kafka = LocalKafka()
    try:
        await kafka.start()
        yield kafka.bootstrap_servers
    finally:
        await kafka.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A server DSN (``postgresql+asyncpg://…``) whose user may create databases.

    With ``DATABASE_URL`` set this is that URL unchanged (its database is only used to connect);
    otherwise the ``postgres`` database of a throwaway local server.
    """
    configured = os.environ.get("DATABASE_URL")
    if configured:
        await _check_postgres(configured)
        yield configured
        return
    from healthscore.local import LocalPostgres

    postgres = LocalPostgres()
    try:
        await postgres.start()
        yield postgres.server_url
    finally:
        await postgres.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    """Every product topic under a prefix of its own, deleted (with anything else the test
    created under that prefix) afterwards."""
    from healthscore.kafka_admin import delete_topics, ensure_topics, list_topics

    names = Topics(f"t{uuid.uuid4().hex[:8]}.")
    await ensure_topics(kafka_bootstrap, names.specs(PARTITIONS))
    yield names
    leftovers = [t for t in await list_topics(kafka_bootstrap) if t.startswith(names.prefix)]
    await delete_topics(kafka_bootstrap, leftovers)


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh database migrated to every head; dropped afterwards (even with connections
    left open)."""
    from healthscore.db.engine import create_database, drop_database
    from healthscore.db.migrations import migrate

    name = f"hs_{uuid.uuid4().hex}"
    url = await create_database(postgres_url, name)
    try:
        await migrate(url)
        yield url
    finally:
        await drop_database(postgres_url, name)


@pytest_asyncio.fixture(loop_scope="session")
async def local_kafka() -> AsyncIterator[LocalKafka]:
    """A private ``healthscore.local.LocalKafka`` for tests that stop and restart the broker
    (never do that to the shared one). Costs a JVM start (a few seconds)."""
    kafka = LocalKafka()
    try:
        await kafka.start()
        yield kafka
    finally:
        await kafka.stop()
