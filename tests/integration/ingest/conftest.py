"""Fixtures for the ingest integration tests (helpers live in ``harness.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from healthscore.apikeys import PostgresKeyRepository
from healthscore.db.engine import create_db_engine
from tests.integration.ingest.harness import Keys


@pytest_asyncio.fixture(loop_scope="session")
async def keys(database_url: str) -> AsyncIterator[Keys]:
    """Keys stored in the test's database before ingest starts (so its first load has them)."""
    engine = create_db_engine(database_url)
    try:
        repo = PostgresKeyRepository(engine)
        ingest = await repo.create("crm-sync", ["ingest"], source="crm")
        admin = await repo.create("ops-console", ["admin"])
        yield Keys(ingest.token, admin.token, repo)
    finally:
        await engine.dispose()
