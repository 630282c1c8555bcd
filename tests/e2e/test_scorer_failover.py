"""Equivalence under failure: two ``healthscore scorer`` processes share a stream of 20,000+
events over 500+ accounts; one is killed with SIGKILL mid-stream and started again. At the end,
every account's state (in PostgreSQL and in the table's changelog) and score (in PostgreSQL and
health.status) equal what the pure engine computes replaying the same events in one process, so
no event was lost or counted twice. The workers run the production store (RocksDB) and a fixed
clock (HEALTHSCORE_CLOCK=accelerated:0:...), so scores compare at the same as_of.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from healthscore.db.engine import create_db_engine
from healthscore.engine import AccountState, apply_event, default_models, new_state, score
from healthscore.engine import select_model as select
from healthscore.local.process import free_port
from healthscore.topics import Topics
from schemas.events import encode_event, event_from_obj
from services.scorer.records import decode_account
from tests.support import wait_for
from tests.support.kafka import Record, consume

pytestmark = pytest.mark.e2e

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
ACCOUNTS = 500
EVENTS = 20_000
PARTITIONS = 3
HEALTHSCORE = str(Path(sys.executable).with_name("healthscore"))

STAGES = ("onboarding", "adoption", "growth", "renewal", None)
PHRASES = (
    "Great support, thank you!",
    "This is broken again and we are frustrated",
    "ok",
    "We love the new dashboards",
    "Terrible experience, considering other vendors",
)


def traffic(seed: int, accounts: int = ACCOUNTS, events: int = EVENTS) -> list[dict[str, Any]]:
    """A deterministic, shuffled stream of every event type with late and duplicate events."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []

    def at() -> str:
        back = dt.timedelta(days=rng.randint(0, 120), seconds=rng.randint(0, 86_399))
        return (NOW - back).isoformat()

    for a in range(accounts):
        payload: dict[str, Any] = {"name": f"Account {a}", "licenses": rng.randint(1, 50)}
        stage = STAGES[a % len(STAGES)]
        if stage is not None:
            payload["lifecycle_stage"] = stage
        payload["segment"] = rng.choice(("smb", "mid", "enterprise"))
        payload["renewal_date"] = (
            NOW.date() + dt.timedelta(days=rng.randint(-10, 300))
        ).isoformat()
        out.append(
            {
                "event_id": f"e-{a}-profile",
                "account_id": f"acct-{a:04d}",
                "type": "account",
                "occurred_at": at(),
                "payload": payload,
            }
        )
    while len(out) < events:
        n = len(out)
        account = f"acct-{rng.randrange(accounts):04d}"
        kind = rng.choices(
            ("usage", "ticket", "billing", "email", "feedback", "account"),
            weights=(60, 10, 8, 12, 5, 5),
        )[0]
        if kind == "usage":
            payload = {
                "metric": rng.choice(("login", "login", "feature_used", "api_call")),
                "user_id": f"u{rng.randrange(20)}",
                "feature": f"f{rng.randrange(8)}",
                "quantity": rng.choice((1, 1, 2.5, 10)),
            }
        elif kind == "ticket":
            payload = {
                "ticket_id": f"t{rng.randrange(6)}",
                "status": rng.choice(("opened", "updated", "resolved", "reopened", "closed")),
                "priority": rng.choice(("low", "normal", "high", "urgent")),
                "text": rng.choice(PHRASES),
            }
            if rng.random() < 0.3:
                payload["csat"] = rng.randint(1, 5)
        elif kind == "billing":
            payload = {
                "invoice_id": f"i{rng.randrange(4)}",
                "status": rng.choice(("issued", "paid", "overdue", "failed")),
                "amount_cents": rng.randrange(10_000, 1_000_000),
                "currency": "EUR",
                "due_at": (NOW + dt.timedelta(days=rng.randint(-40, 40))).isoformat(),
            }
        elif kind == "email":
            payload = {
                "message_id": f"m{n}",
                "direction": rng.choice(("inbound", "outbound")),
                "event": rng.choice(("sent", "opened", "replied")),
                "subject": rng.choice(PHRASES),
            }
        elif kind == "feedback":
            payload = {"survey": "nps", "score": rng.randint(0, 10), "comment": rng.choice(PHRASES)}
        else:
            payload = {"lifecycle_stage": rng.choice(("adoption", "growth", "renewal"))}
        out.append(
            {
                "event_id": f"e-{n}",
                "account_id": account,
                "type": kind,
                "occurred_at": at(),
                "payload": payload,
            }
        )
        if rng.random() < 0.01 and len(out) < events:
            out.append(dict(rng.choice(out)))  # a duplicate event_id: must count once
    rng.shuffle(out)
    return out


def replay(events: list[dict[str, Any]]) -> dict[str, tuple[AccountState, float, str]]:
    models = default_models()
    states: dict[str, AccountState] = {}
    for raw in events:
        event = event_from_obj(raw)
        apply_event(states.setdefault(event.account_id, new_state(event.account_id)), event)
    result: dict[str, tuple[AccountState, float, str]] = {}
    for account, state in states.items():
        card = score(state, select(models, state.profile), NOW)
        result[account] = (state, card.score, card.status)
    return result


class Worker:
    def __init__(self, name: str, env: dict[str, str], data_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {
            **env,
            "HEALTHSCORE_SCORER_PORT": str(self.port),
            "HEALTHSCORE_SCORER_DATA_DIR": str(data_dir),
        }
        self.log_dir = log_dir
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"{self.name}-{self.starts}.log").open("wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                HEALTHSCORE,
                "scorer",
                "--no-create-topics",
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()

    async def ready(self, client: httpx.AsyncClient) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}")
        response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
        return response.status_code == 200

    async def processed(self, client: httpx.AsyncClient) -> float:
        response = await client.get(f"http://127.0.0.1:{self.port}/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in response.text.splitlines()
            if line.startswith("healthscore_scorer_events_processed_total")
        )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 30)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 30)


@asynccontextmanager
async def workers(*pool: Worker) -> AsyncIterator[None]:
    try:
        for worker in pool:
            await worker.start()
        yield
    finally:
        await asyncio.gather(*(worker.stop() for worker in pool))


async def produce_all(bootstrap: str, topics: Topics, events: list[dict[str, Any]]) -> None:
    """Exactly what ingest produces: key account_id, value encode_event, default partitioner."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
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


async def read_to_end(bootstrap: str, topic: str) -> list[Record]:
    """Every record of ``topic`` up to its end offsets now (latest per key = last seen)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()
    assert ends, f"no partitions for {topic}"

    def done(records: Sequence[Record]) -> bool:
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = record.offset
        return all(end == 0 or last.get(tp.partition, -1) >= end - 1 for tp, end in ends.items())

    return await consume(bootstrap, topic, until=done, timeout=120)


async def postgres_view(database_url: str) -> dict[str, tuple[bytes, float, str]]:
    engine = create_db_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT account_id, state, score, status FROM account_scores")
            )
            return {r.account_id: (r.state, r.score, r.status) for r in rows}
    finally:
        await engine.dispose()


def mismatches(
    expected: dict[str, tuple[AccountState, float, str]], seen: dict[str, tuple[bytes, float, str]]
) -> list[str]:
    bad = []
    for account, (state, value, status) in expected.items():
        got = seen.get(account)
        if got is None:
            bad.append(f"{account}: missing")
        elif (got[1], got[2]) != (value, status):
            bad.append(f"{account}: score {got[1:]} != {(value, status)}")
        elif AccountState.from_bytes(got[0]) != state:
            bad.append(f"{account}: state differs")
    return bad


@pytest.mark.timeout(600)
async def test_two_workers_one_killed_mid_stream_equal_the_pure_replay(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    events = traffic(seed=4)
    assert len(events) >= EVENTS
    expected = replay(events)
    assert len(expected) >= ACCOUNTS
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "HEALTHSCORE_TOPIC_PREFIX": topics.prefix,
        "HEALTHSCORE_PARTITIONS": str(PARTITIONS),
        "HEALTHSCORE_CLOCK": f"accelerated:0:{NOW.isoformat()}:0",
        "HEALTHSCORE_SCORER_STORE": "rocksdb://",
        "HEALTHSCORE_SCORER_SESSION_TIMEOUT": "6",
        "HEALTHSCORE_SCORER_REBALANCE_TIMEOUT": "20",
        "HEALTHSCORE_SCORER_COMMIT_INTERVAL": "1",
        "HEALTHSCORE_LOG_LEVEL": "WARNING",
    }
    a = Worker("a", env, tmp_path / "a", tmp_path)
    b = Worker("b", env, tmp_path / "b", tmp_path)
    half = len(events) // 2
    started = time.monotonic()
    async with workers(a, b), httpx.AsyncClient(timeout=5) as client:
        for worker in (a, b):
            await wait_for(
                lambda w=worker: w.ready(client),  # type: ignore[misc]
                timeout=120,
                retry_on=(httpx.TransportError,),
                message=f"worker {worker.name} ready",
            )
        await produce_all(kafka_bootstrap, topics, events[:half])

        # Kill while worker a is in the middle of its share, with records in flight.
        async def a_is_busy() -> bool:
            return await a.processed(client) >= 1500

        await wait_for(a_is_busy, timeout=120, message="a is processing")
        await a.kill()
        await produce_all(kafka_bootstrap, topics, events[half:])
        await a.start()
        last: list[str] = []

        async def converged() -> bool:
            last[:] = mismatches(expected, await postgres_view(database_url))
            return not last

        try:
            await wait_for(converged, timeout=240, interval=1.0, message="PostgreSQL = replay")
        except TimeoutError:
            pytest.fail(f"{len(last)} accounts differ, e.g. {last[:5]}")
    elapsed = time.monotonic() - started

    changelog = await read_to_end(
        kafka_bootstrap, f"{topics.prefix}healthscore-scorer-states-changelog"
    )
    latest = {r.key.decode(): r.value for r in changelog if r.key is not None}
    for account, (state, value, status) in expected.items():
        record = decode_account(latest[account] or b"")
        assert AccountState.from_bytes(record.state) == state, account
        assert (record.header.last_score, record.header.last_status) == (value, status)
    statuses = await read_to_end(kafka_bootstrap, topics.status)
    final = {r.key.decode(): orjson.loads(r.value or b"{}") for r in statuses if r.key}
    for account, (_, value, status) in expected.items():
        assert (final[account]["new_score"], final[account]["new_status"]) == (value, status)
    print(f"failover run: {len(events)} events, {len(expected)} accounts, {elapsed:.1f}s")
