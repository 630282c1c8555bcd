"""KafkaScorePublisher: the scorer's Kafka outputs (health.scores, health.status, events.dlq,
ticks), sent through the faust app's producer.

faust flushes that producer before it commits consumer offsets, so every record sent while
processing an input is acknowledged by Kafka before the input's offset is committed
(at-least-once). Sends are not awaited one by one: a failed delivery is logged and counted.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import faust

from healthscore.topics import Topics
from schemas.messages import DLQ_HEADERS
from services.scorer.decoding import Rejected
from services.scorer.records import TickCause, encode_tick

log = logging.getLogger(__name__)


def _raw_topic(app: faust.App, name: str) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )


class KafkaScorePublisher:
    def __init__(self, app: faust.App, topics: Topics) -> None:
        self._scores = _raw_topic(app, topics.scores)
        self._status = _raw_topic(app, topics.status)
        self._dlq = _raw_topic(app, topics.dlq)
        self._ticks = _raw_topic(app, topics.ticks)

    async def publish_change(self, key: bytes, value: bytes) -> None:
        await self._scores.send(key=key, value=value, callback=_log_failure)

    async def publish_status(self, key: bytes, value: bytes) -> None:
        await self._status.send(key=key, value=value, callback=_log_failure)

    async def dead_letter(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        rejected: Rejected,
        failed_at: dt.datetime,
    ) -> None:
        headers = [
            (DLQ_HEADERS["reason"], rejected.reason.encode()),
            (DLQ_HEADERS["detail"], rejected.detail.encode()),
            (DLQ_HEADERS["topic"], topic.encode()),
            (DLQ_HEADERS["partition"], str(partition).encode()),
            (DLQ_HEADERS["offset"], str(offset).encode()),
            (DLQ_HEADERS["failed_at"], failed_at.isoformat().encode()),
        ]
        await self._dlq.send(
            key=key, value=value or b"", partition=partition, headers=headers, callback=_log_failure
        )

    async def tick(self, key: bytes, partition: int, cause: TickCause) -> None:
        # Explicit partition: the tick must reach the partition that holds the account's state.
        await self._ticks.send(
            key=key, value=encode_tick(cause), partition=partition, callback=_log_failure
        )


def _log_failure(future: Any) -> None:
    try:
        future.result()
    except Exception:
        log.exception("kafka delivery failed")
