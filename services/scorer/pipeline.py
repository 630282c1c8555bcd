"""RecordHandler: what the scoring agent does with one input record.

decode -> AccountScorer -> publish (health.scores, health.status) -> write the tables -> hand
the record and its PostgreSQL effects to the writer, which acks it once they are stored. Table
reads and writes happen here, inside the agent's stream iteration (faust's rule), because the
agent awaits this handler for every record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from healthscore.clock import Clock
from healthscore.topics import Topics
from schemas.events import EVENT_TYPES, EventType
from services.scorer.decoding import Rejected, Tick, decode_event, decode_tick
from services.scorer.due_index import DueIndex
from services.scorer.metrics import ScorerMetrics
from services.scorer.outputs import KafkaScorePublisher
from services.scorer.postgres import PostgresScoreWriter
from services.scorer.scoring import AccountScorer, Outcome

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[object]]


class RecordHandler:
    def __init__(
        self,
        *,
        scorer: AccountScorer,
        states: MutableMapping[bytes, bytes],
        cards: MutableMapping[bytes, bytes],
        publisher: KafkaScorePublisher,
        writer: PostgresScoreWriter,
        index: DueIndex,
        clock: Clock,
        metrics: ScorerMetrics,
        topics: Topics,
    ) -> None:
        self._scorer = scorer
        self._states = states
        self._cards = cards
        self._publisher = publisher
        self._writer = writer
        self._index = index
        self._clock = clock
        self._metrics = metrics
        self._ticks_topic = topics.ticks
        self._event_types: dict[str, EventType] = {topics.event(t): t for t in EVENT_TYPES}

    async def handle(self, message: Any, ack: Ack) -> None:
        """``message`` is the faust Message of the record (topic, partition, offset, key, value,
        time_in)."""
        key: bytes | None = message.key
        value: bytes | None = message.value
        topic: str = message.topic
        event_type = self._event_types.get(topic)
        decoded = (
            decode_tick(key, value) if event_type is None else decode_event(key, value, event_type)
        )
        if isinstance(decoded, Rejected):
            await self._reject(message, decoded, ack)
            return
        assert key is not None  # both decoders reject records without a key
        now = self._clock.now()
        try:
            record = self._states.get(key)
            card = self._cards.get(key)
            if isinstance(decoded, Tick):
                outcome = self._scorer.on_tick(decoded.account_id, record, card, decoded.cause, now)
            else:
                outcome = self._scorer.on_event(record, card, decoded, now)
        except Exception as exc:
            # A record the engine cannot process must not stop the partition: dead-letter it.
            log.exception(
                "record failed to process", extra={"topic": topic, "offset": message.offset}
            )
            await self._reject(message, Rejected("processing_error", type(exc).__name__), ack)
            return
        await self._emit(key, message.partition, outcome)
        metrics = self._metrics
        if isinstance(decoded, Tick):
            metrics.events_processed.labels("tick").inc()
        else:
            metrics.events_processed.labels(decoded.type).inc()
            metrics.event_lag.observe(max(0.0, (now - decoded.occurred_at).total_seconds()))
        if outcome.duplicate:
            metrics.duplicates.inc()
        time_in = getattr(message, "time_in", None)
        if time_in is not None:
            metrics.processing.observe(time.monotonic() - time_in)
        await self._writer.submit(outcome.persist, ack)

    async def _emit(self, key: bytes, partition: int, outcome: Outcome) -> None:
        # Publish before writing the tables: the outputs are queued in the producer ahead of
        # the changelog records, so a crash rarely keeps the new state while losing its
        # outputs; when it does, the redelivered input is a duplicate and republishes them.
        if outcome.scores is not None:
            await self._publisher.publish_change(key, outcome.scores)
        if outcome.status is not None:
            await self._publisher.publish_status(key, outcome.status)
        if outcome.record is not None:
            self._states[key] = outcome.record
        if outcome.card is not None:
            self._cards[key] = outcome.card
        if outcome.known:
            self._index.update(
                key,
                partition,
                outcome.next_rescore_epoch,
                outcome.current_status,
            )
        change = outcome.published
        if change is not None:
            self._metrics.score_changes.labels(change.old_status or "none", change.new_status).inc()

    async def _reject(self, message: Any, rejected: Rejected, ack: Ack) -> None:
        self._metrics.dlq_records.labels(rejected.reason).inc()
        log.warning(
            "record sent to the dead-letter topic",
            extra={
                "reason": rejected.reason,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
        )
        await self._publisher.dead_letter(
            key=message.key,
            value=message.value,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            rejected=rejected,
            failed_at=self._clock.now(),
        )
        await self._writer.submit(None, ack)
