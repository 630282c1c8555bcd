"""Fixtures for the scorer's integration tests: a scorer worker running in the test's event loop
(real Kafka, real PostgreSQL, memory store, a ManualClock the test moves), and the real ingest
app served over HTTP in front of it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from healthscore.clock import Clock
from healthscore.db.engine import create_db_engine
from healthscore.engine import (
    AccountState,
    PublishedModel,
    ScoreCard,
    apply_event,
    default_models,
    new_state,
    score,
    select_model,
)
from healthscore.local.process import free_port
from healthscore.topics import Topics
from schemas.events import event_from_obj
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.scorer.app import Scorer, create_scorer
from services.scorer.settings import ScorerSettings
from tests.support import wait_for
from tests.support.kafka import Record

PARTITIONS = 3  # tests/conftest.py creates every topic with 3 partitions
API_KEY = "scorer-tests-bootstrap-key"


def scorer_settings(
    kafka_bootstrap: str, database_url: str, topics: Topics, data_dir: Path, **overrides: Any
) -> ScorerSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": database_url,
        "topic_prefix": topics.prefix,
        "partitions": PARTITIONS,
        "store_url": "memory://",
        "data_dir": data_dir,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "standby_replicas": 0,
        "commit_interval_seconds": 0.5,
        "decay_interval_seconds": 0.1,
        "clock": "system",
        **overrides,
    }
    return ScorerSettings(**values)


@asynccontextmanager
async def running_scorer(settings: ScorerSettings, clock: Clock) -> AsyncIterator[Scorer]:
    scorer = create_scorer(settings, clock=clock, registry=CollectorRegistry())
    await asyncio.wait_for(scorer.start(), 60)
    try:
        await wait_for(scorer.is_ready, timeout=60, message="scorer ready")
        yield scorer
    finally:
        await asyncio.wait_for(scorer.stop(), 60)


@asynccontextmanager
async def serve_ingest(
    kafka_bootstrap: str, database_url: str, topics: Topics
) -> AsyncIterator[httpx.AsyncClient]:
    """The real ingest app (create_app) on a free loopback port; yields an authorised client."""
    settings = IngestSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=topics.prefix,
        bootstrap_api_key=API_KEY,
    )
    app = create_app(settings, registry=CollectorRegistry())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or task.done(), timeout=60, message="ingest up")
        if task.done():
            task.result()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=60,
        ) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)


def processed(scorer: Scorer) -> float:
    """Input records the scorer's agent has handled (events, ticks, rejects excluded)."""
    return sum(
        sample.value
        for metric in scorer.metrics.events_processed.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def all_processed(scorer: Scorer, count: int) -> None:
    """Wait until the agent has handled ``count`` records and PostgreSQL holds their effects."""
    await wait_for(lambda: processed(scorer) >= count, timeout=60, message=f"{count} processed")
    await asyncio.wait_for(scorer.writer.drained(), 60)


async def post_events(client: httpx.AsyncClient, events: Sequence[dict[str, Any]]) -> None:
    response = await client.post("/v1/events", json=list(events))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)


def replay(
    events: Sequence[dict[str, Any]],
    as_of: dt.datetime,
    models: Sequence[PublishedModel] | None = None,
) -> dict[str, tuple[AccountState, ScoreCard]]:
    """What the pure engine says, in one process: every account's state and score at as_of."""
    models = tuple(default_models() if models is None else models)
    states: dict[str, AccountState] = {}
    for raw in events:
        event = event_from_obj(raw)
        state = states.setdefault(event.account_id, new_state(event.account_id))
        apply_event(state, event)
    return {
        account: (state, score(state, select_model(models, state.profile), as_of))
        for account, state in states.items()
    }


def latest_by_key(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        assert record.key is not None
        assert record.value is not None
        latest[record.key.decode()] = orjson.loads(record.value)
    return latest


async def account_rows(database_url: str) -> dict[str, dict[str, Any]]:
    engine = create_db_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT * FROM account_scores"))
            return {row["account_id"]: dict(row) for row in result.mappings()}
    finally:
        await engine.dispose()


async def history_rows(database_url: str, account_id: str) -> list[dict[str, Any]]:
    engine = create_db_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT * FROM score_history WHERE account_id = :a ORDER BY id"),
                {"a": account_id},
            )
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()
