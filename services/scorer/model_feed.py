"""KafkaModelFeed: every worker reads the whole health.models topic into its ModelRegistry.

Not group-managed: an aiokafka consumer without a group, assigned the topic's single partition
from the beginning, so every worker sees every version in the same order. ``ready`` is set once
the records present at start are read; the scoring agent waits for it, so a worker never scores
with the built-in defaults while a published model is still on its way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service
from pydantic import ValidationError

from healthscore.engine import ModelInvalid
from schemas.messages import ModelPublished
from services.scorer.metrics import ScorerMetrics
from services.scorer.model_registry import ModelRegistry

log = logging.getLogger(__name__)


class KafkaModelFeed(Service):
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        registry: ModelRegistry,
        metrics: ScorerMetrics,
        on_change: Callable[[], None],
    ) -> None:
        super().__init__()
        self._bootstrap = bootstrap_servers
        self._tp = TopicPartition(topic, 0)
        self._registry = registry
        self._metrics = metrics
        self._on_change = on_change
        self._consumer: AIOKafkaConsumer | None = None
        self._end_offset = 0
        self.ready = asyncio.Event()

    async def on_start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        consumer.assign([self._tp])
        await consumer.seek_to_beginning(self._tp)
        self._end_offset = (await consumer.end_offsets([self._tp]))[self._tp]
        self._metrics.models_loaded.set(len(self._registry.models))
        if self._end_offset == 0:
            self.ready.set()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.should_stop:
            batches = await consumer.getmany(self._tp, timeout_ms=500)
            changed = False
            for record in batches.get(self._tp, ()):
                changed |= self._apply(record.value)
            if changed:
                self._metrics.models_loaded.set(len(self._registry.models))
                self._on_change()
            if not self.ready.is_set() and await consumer.position(self._tp) >= self._end_offset:
                log.info("health models loaded", extra={"models": len(self._registry.models)})
                self.ready.set()

    def _apply(self, value: bytes | None) -> bool:
        if value is None:
            return False  # a tombstone: models are never deleted, only superseded
        try:
            message = ModelPublished.model_validate_json(value)
            changed = self._registry.apply(message)
        except (ValidationError, ModelInvalid) as exc:
            self._metrics.model_records_rejected.inc()
            log.error("ignored an invalid health.models record", extra={"error": str(exc)[:500]})
            return False
        if changed:
            log.info(
                "health model version in effect",
                extra={"model_id": message.model_id, "model_version": message.version},
            )
        return changed
