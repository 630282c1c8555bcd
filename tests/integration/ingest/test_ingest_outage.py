"""Kafka stops mid-run: ingest answers 503 + Retry-After, never hangs, and every event it answered
202 for is in Kafka once the broker is back (a private broker: the shared one is never stopped)."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Sequence

import pytest

from healthscore.kafka_admin import ensure_topics
from healthscore.local import LocalKafka
from healthscore.topics import Topics
from schemas.events import parse_event
from tests.integration.ingest.harness import (
    Ingest,
    Keys,
    bearer,
    ingest_settings,
    serve_ingest,
    unique_events,
)
from tests.support import Record, consume, wait_for

pytestmark = pytest.mark.integration

SEND_TIMEOUT = 3.0


class Sender:
    """Posts batches of 10 back to back, remembering every answer and what was acknowledged."""

    def __init__(self, ingest: Ingest, token: str) -> None:
        self.ingest = ingest
        self.token = token
        self.answers: list[int] = []
        self.acknowledged: list[str] = []
        self.stop = asyncio.Event()
        self.slowest = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100_000):  # bounded; normally ended by ``stop``
            if self.stop.is_set():
                return
            batch = unique_events(10)
            started = loop.time()
            response = await self.ingest.client.post(
                "/v1/events", json=batch, headers=bearer(self.token)
            )
            self.slowest = max(self.slowest, loop.time() - started)
            if response.status_code == 202:
                self.acknowledged.extend(response.json()["event_ids"])
            else:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "2"
            self.answers.append(response.status_code)

    def seen(self, status: int, after: int = 0) -> bool:
        return status in self.answers[after:]


async def test_broker_outage_answers_503_and_loses_nothing_acknowledged(
    local_kafka: LocalKafka, database_url: str, keys: Keys
) -> None:
    bootstrap = local_kafka.bootstrap_servers
    topics = Topics(f"o{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, topics.specs(3))
    settings = ingest_settings(
        bootstrap,
        database_url,
        topics,
        send_timeout_seconds=SEND_TIMEOUT,
        unavailable_retry_after_seconds=2,
        readiness_timeout_seconds=1,
    )
    async with serve_ingest(settings) as ingest:
        sender = Sender(ingest, keys.ingest)
        task = asyncio.create_task(sender.run())
        try:
            await wait_for(lambda: sender.answers.count(202) >= 5, timeout=30, message="202s")

            await local_kafka.stop(keep_data=True)
            down_at = len(sender.answers)
            await wait_for(lambda: sender.seen(503, down_at), timeout=60, message="a 503")
            ready = await ingest.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["kafka"] is False

            await local_kafka.start()
            assert local_kafka.bootstrap_servers == bootstrap  # same port after the restart
            up_at = len(sender.answers)
            await wait_for(
                lambda: sender.answers[up_at:].count(202) >= 5, timeout=120, message="202 again"
            )

            async def ready_again() -> bool:
                return (await ingest.client.get("/readyz")).status_code == 200

            await wait_for(ready_again, timeout=30, message="ready again")
        finally:
            sender.stop.set()
            await asyncio.wait_for(task, timeout=60)

    # No request hung: each answered within the send timeout plus HTTP overhead.
    assert sender.slowest < SEND_TIMEOUT + 5, sender.slowest
    acknowledged = set(sender.acknowledged)
    assert len(acknowledged) == len(sender.acknowledged)

    def has_all(records: Sequence[Record]) -> bool:
        return acknowledged <= {parse_event(r.value).event_id for r in records}

    records = await consume(bootstrap, list(topics.events), until=has_all, timeout=60)
    counts = collections.Counter(parse_event(r.value).event_id for r in records)
    missing = acknowledged - set(counts)
    assert not missing
    # Acknowledged events are not duplicated by the producer's own retries (idempotence).
    assert all(counts[event_id] == 1 for event_id in acknowledged)
