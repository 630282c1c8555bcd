"""Composition root of a scorer worker: :func:`create_scorer` builds the faust app, its tables,
the scoring agent, the timers and the services around them from :class:`ScorerSettings`.

Nothing is created at import time. ``healthscore scorer`` runs the result in a faust Worker
(services/scorer/cli.py); tests start it in their own event loop with :meth:`Scorer.start` and
pass their own clock and metrics registry.

Topology (all co-partitioned, keyed by account_id):

    events.<type> x6 + scorer.ticks --> agent "score" (concurrency 1, raw bytes, manual acks)
        tables: states (AccountRecord), cards (last published ScoreChanged)
        --> health.scores, health.status, events.dlq   (faust producer, flushed before commit)
        --> PostgresScoreWriter (acks each record once PostgreSQL holds its effects)
    timer "decay" --> scorer.ticks ;  health.models --> KafkaModelFeed --> ModelRegistry
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from mode import CrashingSupervisor, Service
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.clock import Clock, clock_from_spec
from healthscore.db import create_db_engine
from healthscore.engine import PublishedModel
from healthscore.kafka_admin import ensure_topics
from healthscore.topics import TopicSpec
from services.scorer.decay import DecaySweeper
from services.scorer.due_index import DueIndex
from services.scorer.http import HealthServer
from services.scorer.metrics import ScorerMetrics
from services.scorer.model_feed import KafkaModelFeed
from services.scorer.model_registry import ModelRegistry
from services.scorer.outputs import KafkaScorePublisher
from services.scorer.pipeline import RecordHandler
from services.scorer.postgres import PostgresScoreWriter
from services.scorer.records import RecordFormatError, decode_header
from services.scorer.scoring import AccountScorer
from services.scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

TABLES = ("states", "cards")
_LAG_INTERVAL_SECONDS = 5.0
_MODELS_WAIT_SECONDS = 60.0


def account_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for an account key: where
    ingest put the account's events, and so where its state lives."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


class _WriterService(Service):
    """Runs the PostgreSQL writer and owns the database engine's lifecycle."""

    def __init__(self, writer: PostgresScoreWriter, engine: AsyncEngine) -> None:
        super().__init__()
        self._writer = writer
        self._engine = engine

    async def on_start(self) -> None:
        await self._writer.start()

    async def on_stop(self) -> None:
        await self._writer.stop()
        await self._engine.dispose()


@dataclass
class Scorer:
    """A built worker: the faust app plus the services that start before it and stop after it
    (model feed, PostgreSQL writer, HTTP endpoints)."""

    settings: ScorerSettings
    app: faust.App
    services: list[Service]
    index: DueIndex
    models: ModelRegistry
    writer: PostgresScoreWriter
    model_feed: KafkaModelFeed
    http: HealthServer
    metrics: ScorerMetrics
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    def is_ready(self) -> bool:
        return (
            self.recovered.is_set() and self.model_feed.ready.is_set() and not self.app.rebalancing
        )

    def changelog_topics(self) -> tuple[TopicSpec, ...]:
        """The tables' changelog topics: compacted, co-partitioned with the event topics."""
        return tuple(
            TopicSpec(
                f"{self.settings.app_id}-{name}-changelog",
                self.settings.partitions,
                {"cleanup.policy": "compact"},
            )
            for name in TABLES
        )

    async def ensure_changelog_topics(self) -> None:
        """Create the changelog topics before the worker joins its group. Left to faust, two
        workers starting together race to create them, and the one that loses sees a topic
        without partitions in its metadata and crashes its agent (PartitionsMismatch)."""
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            self.changelog_topics(),
            replication_factor=self.settings.replication_factor,
        )

    async def start(self) -> None:
        """Start in the running event loop (tests, benchmarks); the CLI uses a faust Worker."""
        await self.ensure_changelog_topics()
        for service in self.services:
            await service.start()
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()
        for service in reversed(self.services):
            await service.stop()

    def worker(self, **kwargs: Any) -> faust.Worker:
        worker = faust.Worker(self.app, *self.services, **kwargs)
        worker.spinner = None  # terminal escape codes would corrupt the JSON log lines
        return worker


def create_scorer(
    settings: ScorerSettings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    db_engine: AsyncEngine | None = None,
    builtin_models: Sequence[PublishedModel] | None = None,
) -> Scorer:
    clock = clock if clock is not None else clock_from_spec(settings.clock)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ScorerMetrics(registry)
    topics = settings.topics
    partitions = settings.partitions

    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store=settings.store_url,
        datadir=str(settings.table_dir),
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 4),
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # A few milliseconds of batching turns one produce request per record (changelog,
        # health.scores, health.status, ticks) into one per batch: far fewer syscalls.
        producer_linger=settings.producer_linger_seconds,
        producer_max_batch_size=256 * 1024,
        stream_wait_empty=True,
        web_enabled=False,
        autodiscover=False,
    )
    # bytes keys and values use faust's raw codec: the scorer's own formats (records.py).
    states = app.Table("states", key_type=bytes, value_type=bytes, partitions=partitions)
    cards = app.Table("cards", key_type=bytes, value_type=bytes, partitions=partitions)
    inputs = app.topic(
        *topics.events,
        topics.ticks,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )

    models = ModelRegistry(builtin_models)
    index = DueIndex()
    publisher = KafkaScorePublisher(app, topics)
    engine = (
        db_engine
        if db_engine is not None
        else create_db_engine(settings.database_url, json_serializer=_json_text)
    )
    writer = PostgresScoreWriter(
        engine,
        metrics,
        batch_size=settings.pg_batch_size,
        flush_interval=settings.pg_flush_interval_seconds,
        max_pending=settings.pg_max_pending,
    )
    feed = KafkaModelFeed(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=topics.models,
        registry=models,
        metrics=metrics,
        on_change=index.mark_all_model_stale,
    )
    account_scorer = AccountScorer(models, cache_size=settings.state_cache_size)
    handler = RecordHandler(
        scorer=account_scorer,
        states=states,
        cards=cards,
        publisher=publisher,
        writer=writer,
        index=index,
        clock=clock,
        metrics=metrics,
        topics=topics,
    )
    sweeper = DecaySweeper(
        index=index,
        publisher=publisher,
        clock=clock,
        metrics=metrics,
        interval_seconds=settings.decay_interval_seconds,
        ticks_per_second=settings.decay_ticks_per_second,
    )
    recovered = asyncio.Event()
    http = HealthServer(
        host=settings.http_host,
        port=settings.http_port,
        registry=registry,
        ready=lambda: scorer.is_ready(),
    )

    async def score(stream: Any) -> None:
        # Scoring before the published models are known would publish scores from the
        # built-in defaults, then rescore: wait for the model feed first.
        await feed.ready.wait()
        manual = stream.noack()
        async for event in manual.events():
            await handler.handle(event.message, _acker(manual, event))

    # An agent that fails outside the per-record dead-letter path crashes the worker (to be
    # restarted, its uncommitted records redelivered) instead of being restarted in place with
    # its in-flight records never acked.
    app.agent(inputs, name="score", concurrency=1, supervisor_strategy=CrashingSupervisor)(score)

    def active_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.ticks}

    async def rebuild_index() -> None:
        """After each recovery: index the accounts of the partitions this worker now owns."""
        started = time.perf_counter()
        recovered.clear()
        account_scorer.forget_all()  # states may have moved: decode from the table again
        try:
            await asyncio.wait_for(feed.ready.wait(), _MODELS_WAIT_SECONDS)
        except TimeoutError:
            log.warning("health models not loaded yet; model rescores will follow when they are")
        owned = active_partitions()
        index.keep_partitions(owned)
        fingerprint = models.fingerprint
        # No await inside the loop: the agent is paused until recovery callbacks return, and
        # the table must not change under the iteration.
        for key, value in states.items():
            partition = account_partition(key, partitions)
            if partition not in owned:
                continue
            try:
                header, _ = decode_header(value)
            except RecordFormatError:
                log.error("unreadable states record skipped", extra={"partition": partition})
                continue
            index.update(
                key,
                partition,
                header.next_rescore_epoch,
                header.last_status,
                model_stale=header.models_fingerprint != fingerprint,
            )
        metrics.table_recoveries.inc()
        metrics.owned_partitions.set(len(owned))
        metrics.index_rebuild.observe(time.perf_counter() - started)
        log.info(
            "due-index rebuilt",
            extra={"partitions": sorted(owned), "accounts": len(index)},
        )
        recovered.set()

    states.on_recover(rebuild_index)

    async def decay() -> None:
        if recovered.is_set() and feed.ready.is_set() and not app.rebalancing:
            await sweeper.run_once()

    app.timer(settings.decay_interval_seconds, name="decay")(_logged(decay))

    async def report() -> None:
        input_topics = {*topics.events, topics.ticks}
        lag: dict[int, int] = {}
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic not in input_topics:
                continue
            highwater = consumer.highwater(tp)
            read = app.monitor.tp_read_offsets.get(tp)
            if highwater is None:
                continue
            position = read + 1 if read is not None else 0
            lag[tp.partition] = lag.get(tp.partition, 0) + max(0, highwater - position)
        metrics.consumer_lag.clear()
        for partition, value in lag.items():
            metrics.consumer_lag.labels(str(partition)).set(value)
        for status in ("red", "amber", "green"):
            metrics.accounts.labels(status).set(index.status_counts.get(status, 0))
        metrics.due_accounts.set(index.due_count(clock.now().timestamp()))

    app.timer(_LAG_INTERVAL_SECONDS, name="report")(_logged(report))

    scorer = Scorer(
        settings=settings,
        app=app,
        services=[feed, _WriterService(writer, engine), http],
        index=index,
        models=models,
        writer=writer,
        model_feed=feed,
        http=http,
        metrics=metrics,
        recovered=recovered,
    )
    return scorer


def _json_text(value: Any) -> str:
    # The JSONB columns' encoder: orjson instead of the stdlib's json.dumps, which cost the
    # worker more than the SQL statements around it (JSONB stores the parsed value either way).
    return orjson.dumps(value).decode()


def _logged(timer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A faust timer dies with the first exception its function raises: log and carry on."""

    async def run() -> None:
        try:
            await timer()
        except Exception:
            log.exception("timer run failed", extra={"timer": timer.__name__})

    run.__name__ = timer.__name__
    run.__qualname__ = timer.__qualname__
    return run


def _acker(stream: Any, event: Any) -> Any:
    async def ack() -> None:
        await stream.ack(event)

    return ack
