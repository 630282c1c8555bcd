"""``healthscore demo``: the whole system on simulated traffic, on one machine.

Order of events (each step waits for the previous with a deadline):

1. Infrastructure: the Kafka and PostgreSQL named by ``KAFKA_BOOTSTRAP_SERVERS`` /
   ``DATABASE_URL`` (the demo then uses its own topic prefix and a fresh database, removed at
   exit), else local ones (``healthscore.local``: Kafka from Maven jars, a throwaway cluster).
   Topics are created, the database migrated.
2. One accelerated clock (``HEALTHSCORE_CLOCK``) shared by the scorer, alerts, api and the
   simulator: ``--speed`` simulated seconds per wall second (default 43,200: a day every two
   seconds), so weeks of behaviour and the decay of quiet accounts play out in a minute.
3. The local receiver that plays Slack (``/slack``, via ``HEALTHSCORE_SLACK_WEBHOOK_URL``) and a
   CRM (``/crm``, signed Standard Webhooks) runs inside the demo; ingest, scorer and api start as
   child processes (``healthscore <service>``), each in its own process group, and the demo waits
   for each ``/readyz``. The shipped health models are then published through the api (draft,
   publish), so the scorers run published versions from ``health.models``.
4. Pre-seeding: the simulator sends ``--history-days`` of ordinary history for every account
   through ingest as fast as ``--rate`` allows, and the demo waits until the scorer has consumed
   it. The alerts service then starts with its consumer group positioned at the end of
   ``health.scores``: the history builds every account's windows but pages nobody.
5. Live: the personas' stories begin (churning accounts collapse, declining ones slide,
   onboarding stalls, expanding ones grow) and the view shows statuses, status changes with their
   drivers, alerts arriving at the receiver, events/s and scoring latency. With ``--duration``
   the demo ends after that many seconds with a summary (``--summary-json`` writes it as JSON);
   Ctrl-C ends it early. Every process group is stopped and temporary data removed either way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.live import Live

from healthscore.clock import AcceleratedClock
from healthscore.demo.models import publish_shipped_models
from healthscore.demo.observe import (
    SendLog,
    commit_group_at_end,
    drain_receiver,
    end_offsets,
    observe_topics,
    partitions,
    remaining,
)
from healthscore.demo.processes import ServiceProcess, healthscore_argv
from healthscore.demo.state import DemoState
from healthscore.demo.view import dashboard, header_line, summary_table
from healthscore.local.process import free_port
from healthscore.simulate.runner import Simulation
from healthscore.simulate.sender import IngestSender
from healthscore.simulate.traffic import Timeline, TrafficGenerator
from healthscore.topics import Topics
from healthscore.webhook_receiver import WebhookReceiver

log = logging.getLogger("healthscore.demo")

DEFAULT_SPEED = 86_400.0  # simulated seconds per wall second: one day every second
# The stories begin this long (simulated) after the alerts service is ready.
STORY_LEAD = dt.timedelta(hours=6)
READY_TIMEOUT = 120.0
CATCH_UP_TIMEOUT = 180.0


@dataclass
class DemoOptions:
    duration: float | None = None
    accounts: int = 30
    seed: int = 1
    speed: float = DEFAULT_SPEED
    rate: float = 4000.0
    history_days: int = 35
    partitions: int = 3
    summary_json: Path | None = None
    interactive: bool = False
    keep_logs: bool = False


@dataclass
class Infrastructure:
    bootstrap: str
    database_url: str
    topics: Topics
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                await cleanup()
            except Exception as exc:  # keep tearing the rest down
                log.warning("cleanup failed: %s", exc)
        self.cleanups.clear()


async def start_infrastructure(
    partitions: int, say: Callable[[str], None], timings: dict[str, float]
) -> Infrastructure:
    from healthscore.db.engine import create_database, drop_database
    from healthscore.db.migrations import migrate
    from healthscore.kafka_admin import delete_topics, ensure_topics
    from healthscore.local import LocalKafka, LocalPostgres
    from healthscore.local.kafka import jars_cached

    began = time.monotonic()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    server_url = os.environ.get("DATABASE_URL", "")
    run_id = uuid.uuid4().hex[:8]
    infra = Infrastructure("", "", Topics(f"demo{run_id}." if bootstrap else ""))
    try:
        starts: list[Awaitable[None]] = []
        kafka = postgres = None
        if not bootstrap:
            kafka = LocalKafka()
            starts.append(kafka.start())
            infra.cleanups.append(kafka.stop)
            say(
                "starting Kafka"
                if jars_cached()
                else "starting Kafka (first run: resolving its jars from Maven Central)"
            )
        if not server_url:
            postgres = LocalPostgres()
            starts.append(postgres.start())
            infra.cleanups.append(postgres.stop)
            say("starting PostgreSQL (a throwaway cluster)")
        await asyncio.gather(*starts)
        if kafka is not None:
            bootstrap = kafka.bootstrap_servers
        infra.bootstrap = bootstrap
        if postgres is not None:
            server_url = postgres.server_url
        database = f"hs_demo_{run_id}"
        infra.database_url = await create_database(server_url, database)
        if postgres is None:  # a shared server: leave it as found

            async def drop() -> None:
                await drop_database(server_url, database)

            infra.cleanups.append(drop)
        timings["infrastructure"] = time.monotonic() - began
        specs = infra.topics.specs(partitions)
        await asyncio.gather(ensure_topics(bootstrap, specs), migrate(infra.database_url))
        if kafka is None:  # a shared broker: remove our topics (and the scorer's) at exit

            async def remove_topics() -> None:
                from healthscore.kafka_admin import list_topics

                ours = [
                    t for t in await list_topics(bootstrap) if t.startswith(infra.topics.prefix)
                ]
                await delete_topics(bootstrap, ours)

            infra.cleanups.append(remove_topics)
        timings["topics_and_migrations"] = time.monotonic() - began - timings["infrastructure"]
        return infra
    except BaseException:
        await infra.close()
        raise


def alerts_file(path: Path) -> None:
    """The demo's alert rules: the defaults plus an expansion rule, every alert to the local
    Slack and to a signed CRM webhook."""
    path.write_bytes(
        orjson.dumps(
            {
                # Cooldowns are in simulated time: a week, so an account whose score hovers
                # at a band's edge pages once, not on every crossing.
                "rules": [
                    {"type": "red_alert", "supersedes": ["status_drop"], "cooldown_hours": 168},
                    {"type": "status_drop", "cooldown_hours": 168},
                    {"type": "sustained_decline"},
                    {"type": "renewal_at_risk"},
                    {
                        "type": "onboarding_stalled",
                        "for_days": 7,
                        # The onboarding model's usage indicators (docs/health-models.md).
                        "indicators": [
                            "Activated seats",
                            "Features tried",
                            "Days since last login",
                        ],
                    },
                    {
                        "type": "expansion_opportunity",
                        # Percent of licensed seats active in 30 days (the default models).
                        "indicators": ["License utilisation"],
                        "above": 110,
                    },
                ],
                "destinations": [
                    {
                        "name": "crm",
                        "type": "webhook",
                        "url_env": "HEALTHSCORE_DEMO_CRM_URL",
                        "secret_env": "HEALTHSCORE_DEMO_CRM_SECRET",
                    }
                ],
                "routes": [{"destinations": ["slack", "crm"]}],
                "delivery": {"backoff_initial_seconds": 0.5, "backoff_max_seconds": 5},
            },
            option=orjson.OPT_INDENT_2,
        )
    )


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.timings: dict[str, float] = {}
        self.published_models: list[tuple[str, int]] = []
        self.began = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="healthscore-demo-"))
        self.services: dict[str, ServiceProcess] = {}
        self.stop = asyncio.Event()
        self.phase = "starting"
        self.failed = False

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.began
        self.console.print(f"[dim]{elapsed:6.1f}s[/dim] {message}", highlight=False)

    def _service(
        self, name: str, env: dict[str, str], port: int, ready: str = "/readyz"
    ) -> ServiceProcess:
        service = ServiceProcess(
            name=name,
            argv=healthscore_argv(name),
            env=env,
            log_path=self.workdir / f"{name}.log",
            ready_url=f"http://127.0.0.1:{port}{ready}",
        )
        self.services[name] = service
        return service

    async def _start(self, client: httpx.AsyncClient, *services: ServiceProcess) -> None:
        for service in services:
            service.start()
        ready = await asyncio.gather(*(s.wait_ready(client, READY_TIMEOUT) for s in services))
        for service, seconds in zip(services, ready, strict=True):
            self.timings[f"{service.name}_ready"] = seconds
            self.say(f"{service.name} ready in {seconds:.1f}s (log: {service.log_path})")

    async def run(self) -> dict[str, Any]:
        options = self.options
        infra = await start_infrastructure(options.partitions, self.say, self.timings)
        self.say(f"Kafka at {infra.bootstrap}, PostgreSQL database ready; topics created")
        try:
            async with WebhookReceiver() as receiver:
                return await self._run(infra, receiver)
        finally:
            self.phase = "stopping"
            await asyncio.gather(*(s.stop() for s in self.services.values()))
            await infra.close()
            if self.failed or options.keep_logs:
                self.say(f"logs kept in {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def _run(self, infra: Infrastructure, receiver: WebhookReceiver) -> dict[str, Any]:
        options = self.options
        api_key = "demo-" + secrets.token_urlsafe(24)
        clock = AcceleratedClock(dt.datetime.now(dt.UTC), time.time(), options.speed)
        ports = {name: free_port() for name in ("ingest", "scorer", "alerts", "api")}
        alerts_path = self.workdir / "alerts.json"
        alerts_file(alerts_path)
        alerts_group = f"{infra.topics.prefix}demo-alerts-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            "DATABASE_URL": infra.database_url,
            "HEALTHSCORE_TOPIC_PREFIX": infra.topics.prefix,
            "HEALTHSCORE_PARTITIONS": str(options.partitions),
            "HEALTHSCORE_CLOCK": clock.spec(),
            "HEALTHSCORE_BOOTSTRAP_API_KEY": api_key,
            "HEALTHSCORE_LOG_LEVEL": "WARNING",
            "HEALTHSCORE_INGEST_HOST": "127.0.0.1",
            "HEALTHSCORE_INGEST_PORT": str(ports["ingest"]),
            "HEALTHSCORE_SCORER_HOST": "127.0.0.1",
            "HEALTHSCORE_SCORER_PORT": str(ports["scorer"]),
            "HEALTHSCORE_SCORER_STORE": "memory://",
            "HEALTHSCORE_SCORER_DATA_DIR": str(self.workdir / "scorer"),
            "HEALTHSCORE_SCORER_STANDBY_REPLICAS": "0",
            "HEALTHSCORE_API_HOST": "127.0.0.1",
            "HEALTHSCORE_API_PORT": str(ports["api"]),
            "HEALTHSCORE_ALERTS_HOST": "127.0.0.1",
            "HEALTHSCORE_ALERTS_PORT": str(ports["alerts"]),
            "HEALTHSCORE_ALERTS_FILE": str(alerts_path),
            "HEALTHSCORE_ALERTS_GROUP_ID": alerts_group,
            "HEALTHSCORE_ALERTS_SWEEP_INTERVAL": "1",
            "HEALTHSCORE_ALERTS_POLL_INTERVAL": "0.2",
            "HEALTHSCORE_SLACK_WEBHOOK_URL": receiver.url("/slack"),
            "HEALTHSCORE_DEMO_CRM_URL": receiver.url("/crm"),
            "HEALTHSCORE_DEMO_CRM_SECRET": "whsec_"
            + base64.b64encode(secrets.token_bytes(24)).decode(),
            "HEALTHSCORE_ALLOW_PRIVATE_WEBHOOKS": "true",
        }
        # Ingest answers at this rate; the simulator stays under it.
        env["HEALTHSCORE_INGEST_RATE_LIMIT"] = str(max(options.rate * 2, 5000))
        ingest = self._service("ingest", env, ports["ingest"])
        scorer = self._service("scorer", env, ports["scorer"])
        api = self._service("api", env, ports["api"])
        alerts = self._service("alerts", env, ports["alerts"])

        timeline = Timeline.ending_at(clock.now(), options.history_days, story=False)
        generator = TrafficGenerator.create(options.accounts, options.seed, timeline)
        state = DemoState(generator.accounts)
        sends = SendLog()

        async with (
            httpx.AsyncClient() as client,
            IngestSender(f"http://127.0.0.1:{ports['ingest']}", api_key) as sender,
        ):
            began = time.monotonic()
            self.phase = "starting services"
            await self._start(client, ingest, scorer, api)
            self.timings["services"] = time.monotonic() - began
            self.published_models = await publish_shipped_models(
                client, f"http://127.0.0.1:{ports['api']}", api_key
            )
            self.say(
                "health models published through the api: "
                + ", ".join(f"{m} v{v}" for m, v in self.published_models)
            )

            def on_sent(events: Any, at: float) -> None:
                state.on_sent(len(events), at)
                sends.record(events, at)

            simulation = Simulation(
                generator, sender, clock, rate=options.rate, batch_size=500, on_sent=on_sent
            )
            tasks = [
                asyncio.create_task(
                    observe_topics(
                        infra.bootstrap,
                        infra.topics,
                        options.partitions,
                        state,
                        sends,
                        self.stop,
                    ),
                    name="observer",
                ),
                asyncio.create_task(simulation.run(self.stop), name="simulator"),
            ]
            try:
                return await self._stages(
                    infra, receiver, client, simulation, generator, state, sends, alerts, tasks
                )
            finally:
                self.stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _stages(
        self,
        infra: Infrastructure,
        receiver: WebhookReceiver,
        client: httpx.AsyncClient,
        simulation: Simulation,
        generator: TrafficGenerator,
        state: DemoState,
        sends: SendLog,
        alerts: ServiceProcess,
        tasks: list[asyncio.Task[None]],
    ) -> dict[str, Any]:
        options = self.options
        # -- pre-seeding -----------------------------------------------------------------------
        self.phase = "pre-seeding history"
        began = time.monotonic()
        await self._until(simulation.history_sent.wait(), CATCH_UP_TIMEOUT, tasks, "history sent")
        self.say(
            f"sent {simulation.history_events} events of history "
            f"({options.history_days} days, {options.accounts} accounts) "
            f"in {time.monotonic() - began:.1f}s"
        )
        scorer_group = f"{infra.topics.prefix}healthscore-scorer"

        # The scorer has caught up once its committed offsets reach the ends of the event
        # topics as they were when the history was sent (live events keep arriving meanwhile).
        targets = await end_offsets(
            infra.bootstrap, partitions(infra.topics, options.partitions, *infra.topics.events)
        )

        async def scorer_caught_up() -> None:
            reported = time.monotonic()
            while True:
                left = await remaining(infra.bootstrap, scorer_group, targets)
                if left == 0:
                    return
                if time.monotonic() - reported >= 5:
                    reported = time.monotonic()
                    self.say(
                        f"scorer has {left if left is not None else 'all'} history events left "
                        f"to score; {state.scores_seen} score changes so far"
                    )
                await asyncio.sleep(0.5)  # polling interval of the lag probe

        await self._until(scorer_caught_up(), CATCH_UP_TIMEOUT, tasks, "scorer caught up")

        # Then until it keeps pace with the live traffic that arrived meanwhile: a scorer that
        # lags rescores quiet accounts at a clock its events have not reached yet.
        async def scorer_keeps_pace() -> None:
            everything = partitions(infra.topics, options.partitions, *infra.topics.events)
            while True:
                now = await end_offsets(infra.bootstrap, everything)
                left = await remaining(infra.bootstrap, scorer_group, now)
                # Offsets are committed every second: a second of traffic may be in flight.
                if left is not None and left <= max(
                    100.0, 2 * state.events_per_second(time.time())
                ):
                    return
                await asyncio.sleep(0.5)  # polling interval of the lag probe

        await self._until(scorer_keeps_pace(), CATCH_UP_TIMEOUT, tasks, "scorer keeps pace")
        self.timings["history"] = time.monotonic() - began
        self.say(
            f"scorer caught up: {state.scores_seen} score changes, "
            + ", ".join(f"{k} {v}" for k, v in state.per_status().items())
        )
        # -- alerts from here on ---------------------------------------------------------------
        await commit_group_at_end(
            infra.bootstrap,
            alerts.env["HEALTHSCORE_ALERTS_GROUP_ID"],
            partitions(infra.topics, options.partitions, infra.topics.scores),
        )
        await self._start(client, alerts)
        pivot = simulation.clock.now() + STORY_LEAD
        generator.begin_story(pivot)
        sends.recording = True
        live_began = time.monotonic()
        state.go_live(time.time())
        self.timings["startup"] = live_began - self.began
        self.phase = "live"
        self.say(
            f"live: the personas' stories begin at simulated {pivot:%Y-%m-%d %H:%M} "
            f"({options.speed:g}x: one simulated day every {86400 / options.speed:.1f}s)"
        )
        await self._live(receiver, state, tasks)
        self.timings["live"] = time.monotonic() - live_began
        self.timings["total"] = time.monotonic() - self.began
        return self._summary(simulation, state)

    async def _until(
        self, condition: Awaitable[Any], within: float, tasks: list[asyncio.Task[None]], what: str
    ) -> None:
        """Wait for ``condition``; fail early when a background task or a service dies."""
        waiter = asyncio.ensure_future(condition)
        deadline = time.monotonic() + within
        try:
            while not waiter.done():
                await asyncio.wait(
                    {waiter, *tasks}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                for task in tasks:
                    if task.done() and not waiter.done():
                        exc = task.exception()
                        raise RuntimeError(
                            f"{task.get_name()} stopped while waiting for {what}: {exc!r}"
                        ) from exc
                for service in self.services.values():
                    if service.proc is not None and not service.running:
                        raise service.failure("exited")
                if self.stop.is_set():
                    raise KeyboardInterrupt
                if time.monotonic() > deadline and not waiter.done():
                    raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
            waiter.result()
        finally:
            waiter.cancel()

    async def _live(
        self, receiver: WebhookReceiver, state: DemoState, tasks: list[asyncio.Task[None]]
    ) -> None:
        options = self.options
        deadline = None if options.duration is None else time.monotonic() + options.duration
        seen = 0
        last_line = time.monotonic()
        live: Live | None = None
        if options.interactive:
            live = Live(
                dashboard(state, self.phase, self.console.size.height),
                console=self.console,
                refresh_per_second=1,
                screen=False,
            )
            live.start()
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                seen = drain_receiver(receiver, state, seen)
                for service in self.services.values():
                    if service.proc is not None and not service.running:
                        raise service.failure("exited during the demo")
                for task in tasks:
                    if task.done():
                        raise RuntimeError(f"{task.get_name()} stopped: {task.exception()!r}")
                if live is not None:
                    live.update(dashboard(state, self.phase, self.console.size.height))
                elif now - last_line >= 5:
                    last_line = now
                    self.say(header_line(state, self.phase, time.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)  # the view's refresh period
            seen = drain_receiver(receiver, state, seen)
        finally:
            if live is not None:
                live.update(dashboard(state, "finished", self.console.size.height))
                live.stop()

    def _summary(self, simulation: Simulation, state: DemoState) -> dict[str, Any]:
        stats = simulation.sender.stats
        return {
            "schema_version": 1,
            "options": {
                "accounts": self.options.accounts,
                "seed": self.options.seed,
                "speed": self.options.speed,
                "duration": self.options.duration,
                "history_days": self.options.history_days,
            },
            "events": {
                "sent": stats.sent,
                "accepted": stats.accepted,
                "rejected": stats.rejected,
                "history": simulation.history_events,
                "throttled": stats.throttled,
            },
            "models_published": dict(self.published_models),
            "accounts_per_status": state.per_status(),
            "alerts_by_rule": dict(sorted(state.alerts_by_rule.items())),
            "webhooks_received": dict(state.received),
            "personas": state.per_persona(),
            "latency_seconds": state.latency(),
            "timings_seconds": {k: round(v, 2) for k, v in self.timings.items()},
            "accounts": state.accounts_summary(),
        }


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    console.print(summary_table(summary))


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
