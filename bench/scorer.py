"""Scorer benchmark: one worker against a real Kafka and PostgreSQL, figures next to baselines
measured in the same run.

1. Saturation: events/s of one worker (RocksDB store, PostgreSQL writer on) draining a backlog of
   a realistic event mix, next to a raw aiokafka consume-and-decode loop (parse_event) over the
   same topics: the ratio is the figure.
2. Latency at a fixed offered load (default 1,000 events/s through the real ingest app): ingest
   202 -> the health.scores record of that event, p50/p99; next to 202 -> the event read back
   from its topic by a raw consumer.
3. Memory per account held by a worker with the in-memory store (table values + due-index), at
   10,000 and 100,000 accounts (tracemalloc).
4. Decay sweep: 100,000 accounts become due at once (the clock passes midnight); time until the
   timer has sent every tick and the agent has rescored every account.

    set -a; . .stack.env; set +a; .venv/bin/python bench/scorer.py
    (without KAFKA_BOOTSTRAP_SERVERS/DATABASE_URL it starts healthscore.local servers)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry

from healthscore.clock import ManualClock
from healthscore.db.engine import create_database, drop_database
from healthscore.db.migrations import migrate
from healthscore.kafka_admin import delete_topics, ensure_topics, list_topics
from healthscore.local.process import free_port
from healthscore.topics import Topics
from schemas.events import EVENT_TYPES, encode_event, event_from_obj, parse_event
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.scorer.app import Scorer, create_scorer
from services.scorer.due_index import DueIndex
from services.scorer.model_registry import ModelRegistry
from services.scorer.records import decode_header
from services.scorer.scoring import AccountScorer
from services.scorer.settings import ScorerSettings

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
PARTITIONS = 6
API_KEY = "bench-key"
PHRASES = ("Great support, thanks", "Broken again, frustrated", "ok", "We love it", "Terrible")


def event_mix(rng: random.Random, account: str, n: int, days: int = 90) -> dict[str, Any]:
    """One event of a realistic mix (mostly usage) for ``account``."""
    at = (NOW - dt.timedelta(days=rng.randint(0, days), seconds=rng.randint(0, 86_399))).isoformat()
    kind = rng.choices(EVENT_TYPES, weights=(60, 10, 8, 12, 5, 5))[0]
    payload: dict[str, Any]
    if kind == "usage":
        payload = {
            "metric": rng.choice(("login", "feature_used")),
            "user_id": f"u{rng.randrange(20)}",
            "feature": f"f{rng.randrange(8)}",
        }
    elif kind == "ticket":
        payload = {
            "ticket_id": f"t{rng.randrange(6)}",
            "priority": rng.choice(("low", "high")),
            "status": rng.choice(("opened", "resolved")),
            "text": rng.choice(PHRASES),
        }
    elif kind == "billing":
        payload = {
            "invoice_id": f"i{rng.randrange(4)}",
            "status": rng.choice(("issued", "paid")),
            "amount_cents": 50_000,
            "currency": "EUR",
        }
    elif kind == "email":
        payload = {
            "message_id": f"m{n}",
            "direction": rng.choice(("inbound", "outbound")),
            "event": "sent",
            "subject": rng.choice(PHRASES),
        }
    elif kind == "feedback":
        payload = {"survey": "nps", "score": rng.randint(0, 10), "comment": rng.choice(PHRASES)}
    else:
        payload = {"lifecycle_stage": rng.choice(("adoption", "renewal")), "licenses": 10}
    return {
        "event_id": f"b-{account}-{n}",
        "account_id": account,
        "type": kind,
        "occurred_at": at,
        "payload": payload,
    }


@contextlib.asynccontextmanager
async def infrastructure() -> AsyncIterator[tuple[str, str]]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    server = os.environ.get("DATABASE_URL")
    async with contextlib.AsyncExitStack() as stack:
        if not bootstrap:
            from healthscore.local import LocalKafka

            kafka = LocalKafka()
            await kafka.start()
            stack.push_async_callback(kafka.stop)
            bootstrap = kafka.bootstrap_servers
        if not server:
            from healthscore.local import LocalPostgres

            postgres = LocalPostgres()
            await postgres.start()
            stack.push_async_callback(postgres.stop)
            server = postgres.server_url
        yield bootstrap, server


@contextlib.asynccontextmanager
async def fresh(bootstrap: str, server: str) -> AsyncIterator[tuple[Topics, str]]:
    topics = Topics(f"bench{uuid.uuid4().hex[:6]}.")
    await ensure_topics(bootstrap, topics.specs(PARTITIONS))
    name = f"hs_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(server, name)
    try:
        await migrate(url)
        yield topics, url
    finally:
        await drop_database(server, name)
        leftovers = [t for t in await list_topics(bootstrap) if t.startswith(topics.prefix)]
        await delete_topics(bootstrap, leftovers)


@contextlib.asynccontextmanager
async def scorer_running(
    bootstrap: str, url: str, topics: Topics, clock: ManualClock, data: Path, **extra: Any
) -> AsyncIterator[Scorer]:
    settings = ScorerSettings(
        kafka_bootstrap_servers=bootstrap,
        database_url=url,
        topic_prefix=topics.prefix,
        partitions=PARTITIONS,
        store_url="rocksdb://",
        data_dir=data,
        http_port=0,
        http_host="127.0.0.1",
        standby_replicas=0,
        **extra,
    )
    scorer = create_scorer(settings, clock=clock, registry=CollectorRegistry())
    await scorer.start()
    try:
        await until(scorer.is_ready, timeout=120)
        yield scorer
    finally:
        await scorer.stop()


async def until(check: Any, timeout: float = 600.0, interval: float = 0.05) -> None:  # noqa: ASYNC109
    """Poll ``check()`` until true (measurement loop, bounded)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def scorer_process(
    bootstrap: str, url: str, topics: Topics, data: Path
) -> AsyncIterator[None]:
    """``healthscore scorer`` as a child process with a fixed clock at NOW."""
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": url,
        "HEALTHSCORE_TOPIC_PREFIX": topics.prefix,
        "HEALTHSCORE_PARTITIONS": str(PARTITIONS),
        "HEALTHSCORE_CLOCK": f"accelerated:0:{NOW.isoformat()}:0",
        "HEALTHSCORE_SCORER_STORE": "rocksdb://",
        "HEALTHSCORE_SCORER_DATA_DIR": str(data),
        "HEALTHSCORE_SCORER_PORT": str(port),
        "HEALTHSCORE_SCORER_STANDBY_REPLICAS": "0",
        "HEALTHSCORE_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("healthscore")),
        "scorer",
        "--no-create-topics",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.TransportError):
                    ready = await client.get(f"http://127.0.0.1:{port}/readyz")
                    if ready.status_code == 200:
                        break
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("scorer process did not become ready")
                await asyncio.sleep(0.2)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()


def processed(scorer: Scorer) -> float:
    return sum(
        s.value
        for m in scorer.metrics.events_processed.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )


async def produce(bootstrap: str, topics: Topics, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for raw in events:
            event = event_from_obj(raw)
            futures.append(
                await producer.send(
                    topics.event(event.type), encode_event(event), key=event.account_id.encode()
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume_and_decode(bootstrap: str, topics: Topics, count: int) -> float:
    consumer = AIOKafkaConsumer(
        *topics.events,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    parse_event(record.value or b"")
                seen += len(records)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def saturation(bootstrap: str, server: str, accounts: int, per_account: int) -> None:
    rng = random.Random(11)
    events = [event_mix(rng, f"sat-{a}", n) for a in range(accounts) for n in range(per_account)]
    rng.shuffle(events)
    async with fresh(bootstrap, server) as (topics, url):
        await produce(bootstrap, topics, events)
        raw_rate = await raw_consume_and_decode(bootstrap, topics, len(events))
        with tempfile.TemporaryDirectory() as data:
            async with scorer_running(bootstrap, url, topics, ManualClock(NOW), Path(data)) as s:
                first = None
                while processed(s) < len(events):
                    if first is None and processed(s) > 0:
                        first = (time.perf_counter(), processed(s))
                    await asyncio.sleep(0.05)
                done = time.perf_counter()
                await s.writer.drained()
                flushed = time.perf_counter()
        assert first is not None
        rate = (len(events) - first[1]) / (done - first[0])
        with_pg = (len(events) - first[1]) / (flushed - first[0])
    print(f"saturation: {len(events)} events over {accounts} accounts, one worker (RocksDB)")
    print(f"  scorer            {rate:10.0f} events/s  ({with_pg:.0f}/s until PostgreSQL flushed)")
    print(f"  raw consume+parse {raw_rate:10.0f} events/s")
    print(f"  ratio scorer/raw  {rate / raw_rate:10.3f}")


async def latency(bootstrap: str, server: str, rate: int, seconds: int) -> None:
    batch = max(1, rate // 20)  # 20 requests per second
    async with fresh(bootstrap, server) as (topics, url):
        ingest = create_ingest(
            IngestSettings(
                kafka_bootstrap_servers=bootstrap,
                database_url=url,
                topic_prefix=topics.prefix,
                bootstrap_api_key=API_KEY,
                rate_limit_per_second=rate * 10,
                rate_limit_burst=rate * 10,
            ),
            registry=CollectorRegistry(),
        )
        port = free_port()
        server_ = uvicorn.Server(
            uvicorn.Config(ingest, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        )
        serving = asyncio.create_task(server_.serve())
        accepted: dict[str, float] = {}
        scored: dict[str, float] = {}
        raw_seen: dict[str, float] = {}

        async def watch(topic_names: list[str], into: dict[str, float], key: str) -> None:
            consumer = AIOKafkaConsumer(
                *topic_names, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
            )
            await consumer.start()
            try:
                while True:
                    batches = await consumer.getmany(timeout_ms=100)
                    now = time.perf_counter()
                    for records in batches.values():
                        for record in records:
                            into[orjson.loads(record.value or b"{}")[key]] = now
            finally:
                await consumer.stop()

        with tempfile.TemporaryDirectory() as data:
            # The worker runs in its own process, as in production: ingest, the load generator
            # and the watchers share this one.
            async with scorer_process(bootstrap, url, topics, Path(data)):
                await until(lambda: server_.started)
                watchers = [
                    asyncio.create_task(watch([topics.scores], scored, "account_id")),
                    asyncio.create_task(watch(list(topics.events), raw_seen, "account_id")),
                ]
                await asyncio.sleep(2)  # let the watchers' consumers get their partitions
                run = uuid.uuid4().hex[:6]
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    timeout=30,
                    headers={"Authorization": f"Bearer {API_KEY}"},
                ) as client:
                    started = time.perf_counter()
                    n = 0
                    for tick in range(seconds * 20):
                        # Every event opens a new account: its first score is always published,
                        # so every event has a health.scores record to time.
                        body = [
                            {
                                "event_id": f"{run}-{n + i}",
                                "account_id": f"lat-{run}-{n + i}",
                                "type": "usage",
                                "occurred_at": NOW.isoformat(),
                                "payload": {"metric": "login", "user_id": "u1"},
                            }
                            for i in range(batch)
                        ]
                        n += batch
                        response = await client.post("/v1/events", json=body)
                        response.raise_for_status()
                        now = time.perf_counter()
                        for item in body:
                            accepted[item["account_id"]] = now
                        pause = started + (tick + 1) / 20 - time.perf_counter()
                        if pause > 0:
                            await asyncio.sleep(pause)  # pacing the offered load, not syncing
                    offered = n / (time.perf_counter() - started)
                with contextlib.suppress(TimeoutError):
                    await until(lambda: len(scored) >= len(accepted), timeout=60)
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
        server_.should_exit = True
        await serving
    lat = sorted(scored[a] - t for a, t in accepted.items() if a in scored)
    raw = sorted(raw_seen[a] - t for a, t in accepted.items() if a in raw_seen)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000

    print(
        f"latency at {offered:.0f} events/s offered for {seconds}s ({len(accepted)} events,"
        f" {len(lat)} scored)"
    )
    print(
        f"  ingest 202 -> health.scores   p50 {pct(lat, 0.5):7.1f} ms  p99 {pct(lat, 0.99):7.1f} ms"
    )
    print(
        f"  ingest 202 -> raw consumer    p50 {pct(raw, 0.5):7.1f} ms  p99 {pct(raw, 0.99):7.1f} ms"
    )


def memory(accounts: int, template: list[tuple[bytes, bytes, bytes]]) -> None:
    """What a memory:// worker holds per account: states and cards values and the due-index."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states: dict[bytes, bytes] = {}
    cards: dict[bytes, bytes] = {}
    index = DueIndex()
    for n in range(accounts):
        key, record, card = template[n % len(template)]
        new_key = key + b"-" + str(n).encode()
        states[new_key] = bytes(bytearray(record))
        cards[new_key] = bytes(bytearray(card))
        header, _ = decode_header(record)
        index.update(new_key, n % PARTITIONS, header.next_rescore_epoch, header.last_status)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        f"  {accounts:7d} accounts: {used / accounts:8.0f} bytes/account in memory"
        f" ({used / 2**20:.0f} MiB)"
    )
    del states, cards, index


def memory_template(count: int, per_account: int) -> list[tuple[bytes, bytes, bytes]]:
    rng = random.Random(5)
    scorer = AccountScorer(ModelRegistry())
    out = []
    for a in range(count):
        record = card = None
        for n in range(per_account):
            outcome = scorer.on_event(record, card, event_from_obj(event_mix(rng, f"m{a}", n)), NOW)
            record, card = outcome.record or record, outcome.card or card
        assert record is not None
        assert card is not None
        out.append((f"m{a}".encode(), record, card))
    sizes = [len(r) + len(c) for _, r, c in out]
    print(f"  table values per account ({per_account} events): mean {statistics.mean(sizes):.0f} B")
    return out


async def sweep(bootstrap: str, server: str, accounts: int, rate: float) -> None:
    events = [
        {
            "event_id": f"s{a}",
            "account_id": f"sw-{a}",
            "type": "usage",
            "occurred_at": (NOW - dt.timedelta(hours=1)).isoformat(),
            "payload": {"metric": "login", "user_id": "u1"},
        }
        for a in range(accounts)
    ]
    clock = ManualClock(NOW)
    async with fresh(bootstrap, server) as (topics, url):
        await produce(bootstrap, topics, events)
        with tempfile.TemporaryDirectory() as data:
            async with scorer_running(
                bootstrap, url, topics, clock, Path(data), decay_ticks_per_second=rate
            ) as s:
                load_started = time.perf_counter()
                await until(lambda: processed(s) >= accounts)
                loaded = time.perf_counter() - load_started
                await s.writer.drained()
                sweep_hist = s.metrics.decay_sweep
                clock.advance(dt.timedelta(days=2))  # every account's windows slid: all due
                started = time.perf_counter()
                await until(lambda: processed(s) >= 2 * accounts)
                swept = time.perf_counter() - started
                runs = [x for m in sweep_hist.collect() for x in m.samples]
                sweep_total = next(x.value for x in runs if x.name.endswith("_sum"))
    print(f"decay sweep of {accounts} accounts (tick budget {rate:.0f}/s):")
    print(
        f"  all rescored by time alone in {swept:6.1f} s ({accounts / swept:.0f} accounts/s);"
        f" timer runs took {sweep_total:.2f} s in total"
    )
    print(f"  (loading them took {loaded:.1f} s: {accounts / loaded:.0f} first events/s)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--per-account", type=int, default=20)
    parser.add_argument(
        "--rate",
        type=int,
        action="append",
        default=None,
        help="offered load(s) for the latency run (default 1000 and 250)",
    )
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--sweep-accounts", type=int, default=100_000)
    parser.add_argument("--sweep-rate", type=float, default=20_000)
    parser.add_argument(
        "--skip", action="append", default=[], choices=["saturation", "latency", "memory", "sweep"]
    )
    args = parser.parse_args()
    async with infrastructure() as (bootstrap, server):
        if "saturation" not in args.skip:
            await saturation(bootstrap, server, args.accounts, args.per_account)
        if "latency" not in args.skip:
            for rate in args.rate or [1000, 250]:
                await latency(bootstrap, server, rate, args.seconds)
        if "memory" not in args.skip:
            print("memory per account (memory:// store values + due-index):")
            template = memory_template(500, 20)
            memory(10_000, template)
            memory(100_000, template)
        if "sweep" not in args.skip:
            await sweep(bootstrap, server, args.sweep_accounts, args.sweep_rate)


if __name__ == "__main__":
    asyncio.run(main())
