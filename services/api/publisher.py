"""Announcing published model versions on the compacted ``health.models`` topic.

Every scorer reads ``health.models`` from the beginning, so a version counts as published only
once Kafka has acknowledged its record: the producer is idempotent with ``acks=all``, and
:meth:`KafkaModelPublisher.publish` returns only after the acknowledgement (or raises
:class:`PublishUnavailableError`). The records of one publish (a new version plus, when the default
moves, the previous default's demotion) go out as ONE record batch on the topic's single
partition, and Kafka appends a batch atomically: scorers see both versions or neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer

from schemas.messages import ModelPublished

logger = logging.getLogger(__name__)

# Model documents are small, but a batch must hold every record of one publish.
MAX_BATCH_BYTES = 1024 * 1024


class PublishUnavailableError(Exception):
    """Kafka did not acknowledge the records in time; nothing may be reported as published."""


class ModelPublisher(Protocol):
    async def publish(self, messages: Sequence[ModelPublished]) -> None:
        """Write ``messages`` (key: model id) and return once Kafka acknowledged all of them.

        Raises :class:`PublishUnavailableError` when Kafka is unreachable or too slow.
        """
        ...

    async def ready(self) -> bool:
        """Whether the broker answers a metadata request now."""
        ...


class KafkaModelPublisher:
    """The production :class:`ModelPublisher` (aiokafka, idempotent, ``acks=all``).

    The producer starts in :meth:`start`; when Kafka is down then, the api still serves reads
    and the producer is started again by the next publish.
    """

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout: float) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            await self._started()
        except PublishUnavailableError:
            logger.warning("Kafka unreachable at start; the next publish retries")

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id="healthscore-api",
                acks="all",
                enable_idempotence=True,
                max_batch_size=MAX_BATCH_BYTES,
                max_request_size=MAX_BATCH_BYTES + 64 * 1024,
                request_timeout_ms=int(self._timeout * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self._timeout)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise PublishUnavailableError(f"Kafka unreachable: {type(exc).__name__}") from None
            self._producer = producer
            return producer

    async def publish(self, messages: Sequence[ModelPublished]) -> None:
        records = [(m.model_id.encode(), m.model_dump_json().encode()) for m in messages]
        producer = await self._started()
        try:
            await asyncio.wait_for(self._send(producer, records), self._timeout)
        except PublishUnavailableError:
            raise
        except Exception as exc:
            logger.warning(
                "model versions not acknowledged by Kafka",
                extra={"error_type": type(exc).__name__, "records": len(records)},
            )
            raise PublishUnavailableError(
                f"Kafka did not acknowledge: {type(exc).__name__}"
            ) from None

    async def _send(self, producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]) -> None:
        partitions = await producer.partitions_for(self._topic)
        if len(partitions) == 1:
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise PublishUnavailableError(
                        "the model versions exceed one Kafka record batch"
                    )
            future = await producer.send_batch(batch, self._topic, partition=next(iter(partitions)))
            await future
            return
        # A topic created with several partitions (not by `healthscore topics`): records of one
        # model stay ordered, but a default transfer is no longer atomic across models.
        futures = [await producer.send(self._topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    async def ready(self) -> bool:
        try:
            producer = await self._started()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), self._timeout)
        except Exception:
            return False
        return True
