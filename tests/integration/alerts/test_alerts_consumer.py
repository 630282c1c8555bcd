"""The health.scores consumer shell against a real broker: a failed batch whose partition was
revoked meanwhile must not end consumption."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from healthscore.topics import Topics
from healthscore.webhook_receiver import WebhookReceiver
from services.alerts.consumer import ScoreRecord, ScoresConsumer
from tests.integration.alerts.conftest import make_config, make_settings, running
from tests.support import produce

pytestmark = pytest.mark.integration


class _RevokingProcessor:
    """Fails its first batch after the partition was moved away (a rebalance during a database
    outage); records every later batch."""

    def __init__(self, consumer: AIOKafkaConsumer, moved_to: TopicPartition) -> None:
        self._consumer = consumer
        self._moved_to = moved_to
        self.failed = False
        self.later: asyncio.Queue[list[ScoreRecord]] = asyncio.Queue()

    async def process(self, records: Sequence[ScoreRecord]) -> list[Any]:
        if not self.failed:
            self.failed = True
            self._consumer.assign([self._moved_to])
            raise RuntimeError("database unavailable")
        await self.later.put(list(records))
        return []


async def test_a_failed_batch_of_a_revoked_partition_does_not_stop_consumption(
    kafka_bootstrap: str, topics: Topics
) -> None:
    sent = await produce(kafka_bootstrap, topics.scores, [(f"k{i}", b"{}") for i in range(12)])
    first = sent[0].partition
    other = next(m.partition for m in sent if m.partition != first)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"alerts-test-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    processor = _RevokingProcessor(consumer, TopicPartition(topics.scores, other))
    try:
        consumer.assign([TopicPartition(topics.scores, first)])
        scores = ScoresConsumer(consumer, processor, retry_seconds=0.01)  # type: ignore[arg-type]
        task = asyncio.create_task(scores.run())
        getter = asyncio.create_task(processor.later.get())
        try:
            await asyncio.wait({task, getter}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            assert not task.done(), f"the consumer loop ended: {task.exception()!r}"
            assert getter.done(), "no batch was processed after the failed one"
        finally:
            for pending in (task, getter):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    finally:
        await consumer.stop()
    assert processor.failed
    assert {r.partition for r in getter.result()} == {other}


async def test_a_stopped_background_loop_makes_the_service_unready(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, [{"name": "crm", "type": "webhook", "url": receiver.url("/c")}])
    async with running(make_settings(kafka_bootstrap, database_url, topics), config) as service:
        assert await service.ready() == {"database": True, "kafka": True, "tasks": True}
        sweep = next(t for t in service._tasks if t.get_name() == "alerts-sweep")
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(sweep, 10)
        assert (await service.ready())["tasks"] is False
