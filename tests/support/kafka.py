"""Produce to and consume from a real broker in tests, every wait bounded by a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import RecordMetadata

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Headers: TypeAlias = Sequence[tuple[str, bytes]]


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[str | bytes | None, str | bytes]],
    *,
    headers: Headers | None = None,
) -> list[RecordMetadata]:
    """Send ``(key, value)`` pairs with acks=all and return once every one is acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=15000
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=_bytes(value),
                key=_bytes(key),
                headers=list(headers) if headers else None,
            )
            for key, value in records
        ]
        return [await future for future in futures]
    finally:
        await producer.stop()


async def consume(
    bootstrap: str,
    topic: str | Sequence[str],
    *,
    until: Callable[[Sequence[Record]], bool],
    timeout: float = 30.0,  # noqa: ASYNC109 (a deadline is this helper's contract)
) -> list[Record]:
    """Read ``topic`` from the beginning until ``until(records so far)`` is true.

    No consumer group: partitions are assigned directly, so nothing is shared with other tests
    (or with services under test) and there is no group rebalance to wait for. Raises
    ``TimeoutError`` with the number of records seen if ``until`` is still false at the deadline.
    """
    topics = [topic] if isinstance(topic, str) else list(topic)
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    await consumer.start()
    try:
        while not until(records):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"consume({topics}) saw {len(records)} records in {timeout}s without the "
                    "expected condition"
                )
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def at_least(count: int) -> Callable[[Sequence[Record]], bool]:
    """``until`` predicate: at least ``count`` records have arrived."""
    return lambda records: len(records) >= count
