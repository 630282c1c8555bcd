"""Publishing accepted events to Kafka with acks=all and an idempotent producer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import murmur2

from services.ingest.intake import KafkaRecord

logger = logging.getLogger(__name__)


class PublishUnavailableError(Exception):
    """Kafka did not acknowledge every record in time; some may still arrive later."""


class EventPublisher(Protocol):
    async def publish(self, records: Sequence[KafkaRecord]) -> None:
        """Return once Kafka acknowledged every record; raise :class:`PublishUnavailableError`
        when that does not happen within the publisher's send timeout."""
        ...

    async def ready(self) -> bool:
        """Whether the broker answers a metadata request now (for /readyz)."""
        ...


def _retrieve(future: asyncio.Future[object]) -> None:
    # Records still in flight when a request gave up complete (or fail) later; reading the
    # outcome here keeps asyncio from reporting "exception was never retrieved".
    if not future.cancelled():
        future.exception()


@functools.lru_cache(maxsize=131_072)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def cached_murmur2_partitioner(
    key: bytes | None, all_partitions: list[int], available: list[int]
) -> int:
    """aiokafka's DefaultPartitioner (Kafka's murmur2, so every client agrees where an account's
    records go), with the hash of each key cached: the pure-Python murmur2 was the largest
    per-event cost of publishing, and account ids repeat."""
    if key is None:
        return (available or all_partitions)[0]
    return all_partitions[_key_hash(key) % len(all_partitions)]


class KafkaEventPublisher:
    """An aiokafka producer (acks=all, enable_idempotence) with a bounded wait per request.

    ``start()`` never fails because the broker is down: the producer connects in the background
    (retrying with backoff) and :meth:`publish` raises :class:`PublishUnavailableError` until it
    has, so ingest can start before Kafka and answer 503 instead of crashing.

    A send timeout leaves the producer alone (it reconnects to the broker by itself). Any other
    Kafka error is treated as fatal for the producer: once aiokafka's sender has failed, every
    later send raises the same error, so the producer is retired (stopped in the background,
    its buffered records still flushed when possible) and a new one connects.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        send_timeout: float,
        readiness_timeout: float = 2.0,
        client_id: str = "healthscore-ingest",
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._send_timeout = send_timeout
        self._readiness_timeout = readiness_timeout
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            partitioner=cached_murmur2_partitioner,
            # One request's events go out together; 512 KiB batches hold a 1,000-event batch
            # in a few produce requests (the broker's default message.max.bytes is 1 MiB).
            max_batch_size=512 * 1024,
            linger_ms=1,
            # A record not acknowledged by then fails; the request has long answered 503 by then.
            request_timeout_ms=max(30_000, int(self._send_timeout * 3000)),
            retry_backoff_ms=200,
        )

    async def start(self) -> None:
        if not await self._connect_once():
            self._connector = asyncio.create_task(self._connect_forever(), name="ingest-kafka")

    async def _connect_once(self) -> bool:
        producer = self._new_producer()
        try:
            await asyncio.wait_for(producer.start(), timeout=self._send_timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            logger.warning(
                "kafka producer could not connect; retrying in the background",
                extra={"error_type": type(exc).__name__},
            )
            await producer.stop()
            return False
        self._producer = producer
        logger.info("kafka producer connected", extra={"bootstrap": self._bootstrap_servers})
        return True

    async def _connect_forever(self) -> None:
        delay = 0.5
        while not await self._connect_once():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _retire(self, producer: AIOKafkaProducer, error: BaseException) -> None:
        if id(self._producer) != id(producer):  # (not `is`: it would narrow `producer`)
            return  # another request retired it already
        self._producer = None
        logger.error(
            "kafka producer failed; replacing it", extra={"error_type": type(error).__name__}
        )
        stopping = asyncio.create_task(producer.stop(), name="ingest-kafka-retire")
        self._retiring.add(stopping)
        stopping.add_done_callback(self._retiring.discard)
        stopping.add_done_callback(_retrieve)
        if self._connector is None or self._connector.done():
            self._connector = asyncio.create_task(self._connect_forever(), name="ingest-kafka")

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
            self._connector = None
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._producer is not None:
            producer, self._producer = self._producer, None
            # Records still buffered get their chance to be delivered before the process ends.
            await producer.stop()

    async def publish(self, records: Sequence[KafkaRecord]) -> None:
        producer = self._producer
        if producer is None:
            raise PublishUnavailableError("not connected to Kafka")
        try:
            await asyncio.wait_for(self._send_all(producer, records), timeout=self._send_timeout)
        except (KafkaError, TimeoutError) as exc:
            if isinstance(exc, KafkaError) and not isinstance(exc, KafkaTimeoutError):
                self._retire(producer, exc)
            raise PublishUnavailableError(
                f"Kafka did not acknowledge: {type(exc).__name__}"
            ) from exc

    @staticmethod
    async def _send_all(producer: AIOKafkaProducer, records: Sequence[KafkaRecord]) -> None:
        futures = []
        for record in records:
            future = await producer.send(record.topic, value=record.value, key=record.key)
            future.add_done_callback(_retrieve)
            futures.append(future)
        await asyncio.gather(*futures)

    async def ready(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            metadata = await asyncio.wait_for(
                producer.client.fetch_all_metadata(), timeout=self._readiness_timeout
            )
        except (KafkaError, OSError, TimeoutError):
            return False
        return bool(metadata.brokers())
