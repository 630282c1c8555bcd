"""From ``health.scores`` to the outbox.

:class:`ScoreProcessor` is the service logic: decode records, evaluate the rules (pure), route
each alert, and write rule state + alerts + pending deliveries in one transaction.
:class:`ScoresConsumer` is the aiokafka shell around it: it commits offsets only after that
transaction, so a crash between the two re-reads records whose results are already stored;
the stored ``(source_partition, source_offset)`` of each account makes those re-reads no-ops.
No network call to a destination happens here: delivery workers do that, so a slow or dead
destination never holds up consumption.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from healthscore.clock import Clock
from schemas.messages import AlertRaised, ScoreChanged
from services.alerts.config import KAFKA_DESTINATION, ResolvedConfig
from services.alerts.metrics import AlertsMetrics
from services.alerts.rules import RuleState, evaluate, evaluate_time, next_due_at
from services.alerts.store import AlertStore, NewAlert, StateWrite, StoredState, breakdown_of

log = logging.getLogger("healthscore.alerts.consumer")


@dataclass(frozen=True)
class ScoreRecord:
    partition: int
    offset: int
    value: bytes | None


class ScoreProcessor:
    """Evaluates score changes and time-driven rules into the outbox."""

    def __init__(
        self,
        config: ResolvedConfig,
        store: AlertStore,
        metrics: AlertsMetrics,
        *,
        wall: Clock,
        notify: Callable[[Iterable[str]], None] = lambda destinations: None,
    ) -> None:
        self._config = config
        self._store = store
        self._metrics = metrics
        self._wall = wall
        self._notify = notify
        # Record processing and the time sweep both rewrite rule state: one at a time.
        self._lock = asyncio.Lock()

    def _route(self, alert: AlertRaised) -> tuple[str, ...]:
        configured = self._config.destinations_for(
            alert.rule_name, alert.rule, alert.profile.segment, alert.profile.owner
        )
        return (KAFKA_DESTINATION, *configured)

    async def process(self, records: Sequence[ScoreRecord]) -> list[AlertRaised]:
        """Evaluate a batch of ``health.scores`` records (in offset order per partition)."""
        decoded: list[tuple[ScoreRecord, ScoreChanged]] = []
        for record in records:
            try:
                change = ScoreChanged.model_validate_json(record.value or b"")
            except ValidationError as exc:
                log.warning(
                    "skipping undecodable health.scores record",
                    extra={
                        "partition": record.partition,
                        "offset": record.offset,
                        "errors": exc.error_count(),
                    },
                )
                continue
            decoded.append((record, change))
        self._metrics.records.inc(len(records))
        if not decoded:
            return []
        raised: list[AlertRaised] = []
        async with self._lock:
            stored = await self._store.load_states([c.account_id for _, c in decoded])
            writes: dict[str, StateWrite] = {}
            new_alerts: list[NewAlert] = []
            for record, change in decoded:
                current = stored.get(change.account_id) or StoredState(RuleState())
                if (
                    current.source_partition == record.partition
                    and current.source_offset is not None
                    and record.offset <= current.source_offset
                ):
                    continue  # already evaluated before a restart or rebalance
                result = evaluate(self._config.rules, change, current.state, change.scored_at)
                for rule_name in result.suppressed:
                    self._metrics.suppressed.labels(_rule_type(self._config, rule_name)).inc()
                for alert in result.alerts:
                    new_alerts.append(
                        NewAlert(
                            alert,
                            breakdown_of(change),
                            self._route(alert),
                            record.partition,
                            record.offset,
                        )
                    )
                stored[change.account_id] = StoredState(
                    result.state, record.partition, record.offset
                )
                writes[change.account_id] = StateWrite(
                    change.account_id,
                    result.state,
                    record.partition,
                    record.offset,
                    next_due_at(self._config.rules, result.state),
                )
                raised.extend(result.alerts)
            await self._store.save(list(writes.values()), new_alerts, self._wall.now())
        self._after_save(new_alerts)
        return raised

    async def sweep(
        self, now: dt.datetime, partitions: Sequence[int] | None, limit: int = 500
    ) -> list[AlertRaised]:
        """Evaluate time-driven rules of accounts that are due at ``now``."""
        raised: list[AlertRaised] = []
        async with self._lock:
            due = await self._store.due_states(now, partitions, limit)
            writes: list[StateWrite] = []
            new_alerts: list[NewAlert] = []
            for account_id, current in due.items():
                result = evaluate_time(self._config.rules, current.state, now)
                last = result.state.last
                for alert in result.alerts:
                    breakdown = breakdown_of(last) if last is not None else {}
                    new_alerts.append(NewAlert(alert, breakdown, self._route(alert)))
                writes.append(
                    StateWrite(
                        account_id,
                        result.state,
                        current.source_partition,
                        current.source_offset,
                        next_due_at(self._config.rules, result.state),
                    )
                )
                raised.extend(result.alerts)
            await self._store.save(writes, new_alerts, self._wall.now())
        self._after_save(new_alerts)
        return raised

    def _after_save(self, new_alerts: Sequence[NewAlert]) -> None:
        for new in new_alerts:
            self._metrics.fired.labels(new.alert.rule).inc()
            log.info(
                "alert raised",
                extra={
                    "alert_id": new.alert.alert_id,
                    "account_id": new.alert.account_id,
                    "rule": new.alert.rule_name,
                    "destinations": list(new.destinations),
                },
            )
        if new_alerts:
            self._notify({d for a in new_alerts for d in a.destinations})


def _rule_type(config: ResolvedConfig, rule_name: str) -> str:
    return next((r.type for r in config.rules if r.rule_name == rule_name), "unknown")


class ScoresConsumer:
    """Consumes ``health.scores`` in a consumer group; commits after the outbox write."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        processor: ScoreProcessor,
        *,
        max_records: int = 500,
        retry_seconds: float = 1.0,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._max_records = max_records
        self._retry_seconds = retry_seconds

    def assigned_partitions(self) -> list[int]:
        return sorted(tp.partition for tp in self._consumer.assignment())

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=self._max_records)
            if batches:
                await self._handle(batches)

    async def _handle(self, batches: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        ordered = sorted(batches.items(), key=lambda item: (item[0].topic, item[0].partition))
        records = [
            ScoreRecord(r.partition, r.offset, r.value) for _, batch in ordered for r in batch
        ]
        try:
            await self._processor.process(records)
        except Exception:
            # The database is down or failing: rewind so the batch is read again, and wait.
            log.exception("processing health.scores failed; retrying the batch")
            # A partition revoked meanwhile (a rebalance during the outage) is re-read by its new
            # owner from the committed offset; seeking it would raise and end this loop for good.
            assigned = self._consumer.assignment()
            for tp, batch in ordered:
                if batch and tp in assigned:
                    self._consumer.seek(tp, batch[0].offset)
            await asyncio.sleep(self._retry_seconds)  # back off before retrying the database
            return
        offsets = {
            tp: OffsetAndMetadata(batch[-1].offset + 1, "") for tp, batch in ordered if batch
        }
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance moved the partitions: their new owner re-reads these records and the
            # stored source offsets turn them into no-ops.
            log.warning("offset commit failed", extra={"error": type(exc).__name__})
