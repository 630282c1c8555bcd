"""Composition root of the alerts service.

:func:`create_service` builds the object graph from settings (tests pass their own clock,
registry, config, HTTP client); :class:`AlertsService` owns every resource's lifecycle:
``start()`` opens the database engine, the Kafka producer and consumer and the HTTP client, checks
every webhook URL against SSRF, and starts one task for the consumer, one for the time sweep and
one per destination; ``stop()`` cancels them and closes everything. :func:`create_http_app` serves
``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.clock import Clock, SystemClock, clock_from_spec
from healthscore.db.engine import create_db_engine
from services.alerts.config import (
    KAFKA_DESTINATION,
    ConfigError,
    InvalidConfigError,
    ResolvedConfig,
    load_config,
)
from services.alerts.consumer import ScoreProcessor, ScoresConsumer
from services.alerts.delivery import (
    DestinationWorker,
    KafkaChannel,
    SlackChannel,
    WebhookChannel,
    WorkerOptions,
)
from services.alerts.metrics import AlertsMetrics
from services.alerts.settings import AlertsSettings
from services.alerts.ssrf import (
    HostNotResolvedError,
    UnsafeURLError,
    check_destination,
    http_client,
)
from services.alerts.store import PostgresAlertStore

log = logging.getLogger("healthscore.alerts")


@dataclass
class AlertsService:
    settings: AlertsSettings
    config: ResolvedConfig
    registry: CollectorRegistry
    clock: Clock  # rules' clock for the time sweep (may be accelerated in the demo)
    wall: Clock  # delivery timing (backoff, leases, ages): always real time in production
    engine: AsyncEngine | None = None
    metrics: AlertsMetrics | None = None
    workers: dict[str, DestinationWorker] = field(default_factory=dict)
    processor: ScoreProcessor | None = None
    _client: httpx.AsyncClient | None = None
    _own_client: bool = True
    _producer: AIOKafkaProducer | None = None
    _consumer: AIOKafkaConsumer | None = None
    _scores: ScoresConsumer | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    async def check_destinations(self) -> None:
        """Every configured URL must pass the SSRF check (all errors at once)."""
        errors: list[ConfigError] = []
        for i, dest in enumerate(self.config.destinations):
            try:
                await check_destination(
                    dest.url.get_secret_value(),
                    allow_private=self.settings.allow_private_webhooks,
                )
            except UnsafeURLError as exc:
                errors.append(ConfigError(f"destinations[{i}] ({dest.name}).url", str(exc)))
            except HostNotResolvedError as exc:
                # DNS may be down at start; every connection is checked again when made.
                log.warning(
                    "webhook host does not resolve yet",
                    extra={"destination": dest.name, "error": str(exc)},
                )
        if errors:
            raise InvalidConfigError(errors)

    def _notify(self, destinations: Iterable[str]) -> None:
        for name in destinations:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake()

    async def start(self) -> None:
        await self.check_destinations()
        settings = self.settings
        self.metrics = AlertsMetrics(self.registry)
        self.engine = create_db_engine(settings.database_url)
        store = PostgresAlertStore(self.engine)
        if self._client is None:
            self._client = http_client(allow_private=settings.allow_private_webhooks)
            self._own_client = True
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        await self._producer.start()
        topics = settings.topics
        poll = settings.poll_interval_seconds
        self.workers[KAFKA_DESTINATION] = DestinationWorker(
            KAFKA_DESTINATION,
            KafkaChannel(self._producer, topics.alerts),
            store,
            self.config.delivery,
            self.metrics,
            options=WorkerOptions(batch_size=500, one_group=True, poll_interval_seconds=poll),
            wall=self.wall,
            rng=self.rng,
        )
        for dest in self.config.destinations:
            spec = dest.spec
            url = dest.url.get_secret_value()
            if spec.type == "slack":
                channel: SlackChannel | WebhookChannel = SlackChannel(
                    self._client,
                    url,
                    account_url=self.config.account_url,
                    timeout=spec.timeout_seconds,
                )
                options = WorkerOptions(
                    min_interval_seconds=spec.min_interval_seconds,
                    batch_size=spec.coalesce_max,
                    coalesce_above=spec.coalesce_above,
                    timeout_seconds=spec.timeout_seconds,
                    poll_interval_seconds=poll,
                )
            else:
                assert dest.secret is not None
                channel = WebhookChannel(
                    self._client,
                    url,
                    dest.secret.get_secret_value(),
                    account_url=self.config.account_url,
                    timeout=spec.timeout_seconds,
                )
                options = WorkerOptions(
                    min_interval_seconds=spec.min_interval_seconds,
                    batch_size=spec.concurrency * 8,
                    concurrency=spec.concurrency,
                    timeout_seconds=spec.timeout_seconds,
                    poll_interval_seconds=poll,
                )
            self.workers[dest.name] = DestinationWorker(
                dest.name,
                channel,
                store,
                dest.policy,
                self.metrics,
                options=options,
                wall=self.wall,
                rng=self.rng,
            )
        self.processor = ScoreProcessor(
            self.config, store, self.metrics, wall=self.wall, notify=self._notify
        )
        self._consumer = AIOKafkaConsumer(
            topics.scores,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.offset_reset,
            isolation_level="read_committed",
        )
        await self._consumer.start()
        self._scores = ScoresConsumer(self._consumer, self.processor)
        self._tasks = [
            asyncio.create_task(self._scores.run(), name="alerts-consumer"),
            asyncio.create_task(self._sweep_loop(), name="alerts-sweep"),
            *(
                asyncio.create_task(w.run(), name=f"alerts-delivery-{name}")
                for name, w in self.workers.items()
            ),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_stopped)
        log.info(
            "alerts service started",
            extra={
                "rules": [r.rule_name for r in self.config.rules],
                "destinations": list(self.workers),
                "group_id": settings.group_id,
            },
        )

    async def _sweep_loop(self) -> None:
        assert self.processor is not None
        assert self._scores is not None
        while True:
            try:
                await self.processor.sweep(self.clock.now(), self._scores.assigned_partitions())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("time sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)  # the sweep's period

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._client is not None and self._own_client:
            await self._client.aclose()
        self._client = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    async def ready(self) -> dict[str, bool]:
        # A background loop that ended (it only ends on an unexpected error) means alerts are no
        # longer evaluated or delivered: not ready, so the orchestrator restarts the process.
        checks = {
            "database": False,
            "kafka": False,
            "tasks": bool(self._tasks) and not any(t.done() for t in self._tasks),
        }
        if self.engine is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2), self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                checks["database"] = True
        if self._producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._producer.partitions_for(self.settings.topics.alerts)
                checks["kafka"] = True
        return checks

    def destination_health(self) -> dict[str, bool]:
        return {name: w.healthy for name, w in self.workers.items()}


def _report_stopped(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "background task stopped",
            exc_info=task.exception(),
            extra={"task": task.get_name()},
        )


def create_service(
    settings: AlertsSettings,
    *,
    registry: CollectorRegistry | None = None,
    config: ResolvedConfig | None = None,
    clock: Clock | None = None,
    wall: Clock | None = None,
    client: httpx.AsyncClient | None = None,
    rng: random.Random | None = None,
) -> AlertsService:
    """Build the alerts service from settings; raises InvalidConfigError for a bad alerts file."""
    resolved = config or load_config(
        settings.alerts_file, slack_webhook_url=settings.slack_webhook_url
    )
    service = AlertsService(
        settings=settings,
        config=resolved,
        registry=registry or CollectorRegistry(),
        clock=clock or clock_from_spec(settings.clock),
        wall=wall or SystemClock(),
        rng=rng or random.Random(),
    )
    if client is not None:
        service._client = client
        service._own_client = False
    return service


def create_http_app(service: AlertsService) -> FastAPI:
    """``/healthz``, ``/readyz`` and ``/metrics`` of the alerts service."""
    app = FastAPI(title="healthscore alerts", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        """Database and Kafka reachable, background loops running."""
        checks = await service.ready()
        ok = all(checks.values())
        response.status_code = 200 if ok else 503
        return {
            "status": "ok" if ok else "unavailable",
            "checks": checks,
            "destinations_healthy": service.destination_health(),
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return app
