"""Fixtures for the api's integration tests: the app on a fresh database and unique topics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.apikeys import PostgresKeyRepository
from healthscore.db.engine import create_db_engine
from healthscore.topics import Topics
from tests.integration.api.testkit import Api, api_settings, running_api


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_db_engine(database_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def ingest_only_token(db: AsyncEngine) -> str:
    """A stored key with only the ``ingest`` scope (created before the app loads its keys)."""
    new = await PostgresKeyRepository(db).create(f"source-{uuid.uuid4().hex[:8]}", ["ingest"])
    return new.token


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    database_url: str, kafka_bootstrap: str, topics: Topics, ingest_only_token: str
) -> AsyncIterator[Api]:
    async with running_api(api_settings(database_url, kafka_bootstrap, topics)) as running:
        yield running
