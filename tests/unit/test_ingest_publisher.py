"""KafkaEventPublisher: Kafka's partitioning, and replacing a producer that failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.intake import KafkaRecord
from services.ingest.publisher import (
    KafkaEventPublisher,
    PublishUnavailableError,
    cached_murmur2_partitioner,
)
from tests.support import wait_for


@given(key=st.binary(min_size=0, max_size=200), partitions=st.integers(1, 64))
def test_same_partition_as_the_default_partitioner(key: bytes, partitions: int) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert cached_murmur2_partitioner(key, all_partitions, all_partitions) == expected
    assert cached_murmur2_partitioner(key, all_partitions, all_partitions) == expected  # cached


class FakeProducer:
    """Stands in for AIOKafkaProducer behind KafkaEventPublisher._new_producer (our seam)."""

    def __init__(self, fail_with: Exception | None) -> None:
        self.fail_with = fail_with
        self.sent: list[KafkaRecord] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(KafkaRecord(topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class ScriptedPublisher(KafkaEventPublisher):
    def __init__(self, failures: list[Exception | None]) -> None:
        super().__init__("127.0.0.1:1", send_timeout=1.0)
        self.failures = failures
        self.producers: list[FakeProducer] = []

    def _new_producer(self) -> Any:
        producer = FakeProducer(self.failures.pop(0) if self.failures else None)
        self.producers.append(producer)
        return producer


RECORD = [KafkaRecord("events.usage", b"acme", b"{}")]


async def test_a_failed_producer_is_replaced() -> None:
    publisher = ScriptedPublisher([KafkaError("sender died")])
    await publisher.start()
    try:
        with pytest.raises(PublishUnavailableError):
            await publisher.publish(RECORD)

        async def published() -> bool:
            try:
                await publisher.publish(RECORD)
            except PublishUnavailableError:
                return False
            return True

        await wait_for(published, timeout=5, message="a publish through a new producer")
        first, second = publisher.producers
        assert first.stopped
        assert second.sent == RECORD
    finally:
        await publisher.close()
    assert publisher.producers[1].stopped


async def test_a_send_timeout_keeps_the_producer() -> None:
    publisher = ScriptedPublisher([KafkaTimeoutError()])
    await publisher.start()
    try:
        with pytest.raises(PublishUnavailableError):
            await publisher.publish(RECORD)
        assert len(publisher.producers) == 1
        assert not publisher.producers[0].stopped
    finally:
        await publisher.close()
