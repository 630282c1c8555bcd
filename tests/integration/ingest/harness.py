"""Helpers for the ingest integration tests: the real app served over HTTP by uvicorn with its
real composition root (PostgreSQL key store, aiokafka publisher), and example events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from healthscore.apikeys import PostgresKeyRepository
from healthscore.local.process import free_port
from healthscore.topics import Topics
from schemas.events import EVENT_TYPES
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support import wait_for

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"


def example(event_type: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{event_type}.json").read_text())
    data.update(changes)
    return data


def unique_events(count: int, *, accounts: int = 7) -> list[dict[str, Any]]:
    """``count`` valid events cycling through every type and a few accounts, unique ids."""
    run = uuid.uuid4().hex[:8]
    return [
        example(
            EVENT_TYPES[i % len(EVENT_TYPES)],
            event_id=f"{run}-{i}",
            account_id=f"acct-{i % accounts}",
        )
        for i in range(count)
    ]


@dataclass
class Ingest:
    url: str
    client: httpx.AsyncClient
    settings: IngestSettings
    registry: CollectorRegistry
    app: FastAPI


@asynccontextmanager
async def serve_ingest(settings: IngestSettings) -> AsyncIterator[Ingest]:
    """``create_app(settings)`` served by uvicorn on a free loopback port until the block ends."""
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or task.done(), timeout=60, message="uvicorn up")
        if task.done():
            task.result()  # raises what made startup fail
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            yield Ingest(url, client, settings, registry, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)


def ingest_settings(
    kafka_bootstrap: str, database_url: str, topics: Topics, **overrides: Any
) -> IngestSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": database_url,
        "topic_prefix": topics.prefix,
        "bootstrap_api_key": None,
        **overrides,
    }
    return IngestSettings(**values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Keys:
    ingest: str
    admin_only: str
    repo: PostgresKeyRepository
