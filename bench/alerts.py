"""Alerts delivered per second to a local receiver, and latency from a ``health.scores`` record to
the webhook's receipt, next to a raw httpx client posting the same payloads in the same run.

The alerts service runs in this process through its composition root (real Kafka consumer, the
PostgreSQL outbox, per-destination workers, a signed CRM webhook destination with
``concurrency`` parallel requests, plus the implicit ``health.alerts`` topic). ``--alerts``
``health.scores`` records (one red alert each, distinct accounts) are produced at once; the
figures are alerts/s from the first produce to the last receipt and p50/p99 of
record-produced -> webhook-received. The baseline posts the same signed bodies with one httpx
client at the same concurrency to the same receiver: the ceiling for this machine.

Slack destinations are paced at about one message per second by design (and coalesced), so
they are not part of a throughput figure.

Kafka and PostgreSQL: ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set (``. .stack.env``),
else local servers started here.

    .venv/bin/python bench/alerts.py [--alerts 2000] [--concurrency 8] [--rate 0]

With ``--rate`` the records are offered at a steady rate below capacity, so the latency figures
show the pipeline's own delay rather than the backlog of a storm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from healthscore.db.engine import create_database, drop_database
from healthscore.db.migrations import migrate
from healthscore.kafka_admin import delete_topics, ensure_topics
from healthscore.topics import Topics
from healthscore.webhook_receiver import WebhookReceiver
from schemas.messages import ScoreChanged
from services.alerts import crm
from services.alerts.app import create_service
from services.alerts.config import parse_config, resolve
from services.alerts.rules import RuleState, evaluate
from services.alerts.settings import AlertsSettings
from services.alerts.store import breakdown_of

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ACCOUNT_URL = "http://127.0.0.1:8000/v1/accounts/{account_id}"


def change(account: str, at: dt.datetime) -> ScoreChanged:
    return ScoreChanged.model_validate(
        {
            "account_id": account,
            "profile": {"name": f"Account {account}", "segment": "smb", "owner": "ann"},
            "model_id": "default",
            "model_version": 1,
            "old_score": 55.0,
            "new_score": 30.0,
            "old_status": "amber",
            "new_status": "red",
            "categories": [
                {
                    "name": "usage",
                    "weight": 1,
                    "score": 30,
                    "earned_points": 3,
                    "possible_points": 10,
                }
            ],
            "indicators": [
                {
                    "category": "usage",
                    "name": "weekly_active_users",
                    "metric": "distinct",
                    "value": 1,
                    "level": "poor",
                    "points": 0,
                    "max_points": 10,
                    "counted": True,
                }
            ],
            "drivers": [
                {
                    "category": "usage",
                    "indicator": "weekly_active_users",
                    "old_value": 30,
                    "new_value": 1,
                    "old_level": "good",
                    "new_level": "poor",
                    "points_delta": -10,
                    "score_impact": -25,
                }
            ],
            "cause": "time",
            "scored_at": at.isoformat(),
            "event_time": None,
        }
    )


@contextlib.asynccontextmanager
async def servers() -> AsyncIterator[tuple[str, str]]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    async with contextlib.AsyncExitStack() as stack:
        if not kafka:
            from healthscore.local import LocalKafka

            local_kafka = LocalKafka()
            await local_kafka.start()
            stack.push_async_callback(local_kafka.stop)
            kafka = local_kafka.bootstrap_servers
        if not database:
            from healthscore.local import LocalPostgres

            local_pg = LocalPostgres()
            await local_pg.start()
            stack.push_async_callback(local_pg.stop)
            database = local_pg.server_url
        yield kafka, database


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_service(
    kafka: str, database_url: str, topics: Topics, count: int, concurrency: int, rate: float
) -> dict[str, float]:
    secret_file = Path(tempfile.mkstemp()[1])
    secret_file.write_text(SECRET)  # noqa: ASYNC240 - setup, outside the measured window
    async with WebhookReceiver() as receiver:
        config = resolve(
            parse_config(
                {
                    "destinations": [
                        {
                            "name": "crm",
                            "type": "webhook",
                            "url": receiver.url("/crm"),
                            "secret_file": str(secret_file),
                            "concurrency": concurrency,
                        }
                    ],
                    "routes": [{"destinations": ["crm"]}],
                    "account_url": ACCOUNT_URL,
                }
            )
        )
        settings = AlertsSettings.model_validate(
            {
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "DATABASE_URL": database_url,
                "HEALTHSCORE_TOPIC_PREFIX": topics.prefix,
                "HEALTHSCORE_ALLOW_PRIVATE_WEBHOOKS": True,
                "HEALTHSCORE_ALERTS_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
                "HEALTHSCORE_ALERTS_POLL_INTERVAL": 0.2,
            }
        )
        service = create_service(settings, config=config, registry=CollectorRegistry())
        await service.start()
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            # Let the consumer join its group before the clock starts.
            await asyncio.wait_for(_assigned(service), 30)
            now = dt.datetime.now(dt.UTC)
            sent_at: dict[str, float] = {}
            values = [
                (f"bench-{i}", change(f"bench-{i}", now).model_dump_json().encode())
                for i in range(count)
            ]
            start = time.monotonic()
            futures = []
            for i, (account, value) in enumerate(values):
                if rate > 0:  # a steady offered load: latency without a backlog
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent_at[account] = time.monotonic()
                futures.append(
                    await producer.send(topics.scores, key=account.encode(), value=value)
                )
            await asyncio.gather(*futures)
            received = await receiver.wait_for(
                lambda r: len({x.webhook_id for x in r if x.ok}) >= count, path="/crm", within=600
            )
            end = max(r.received_monotonic for r in received)
            latencies = [
                r.received_monotonic - sent_at[orjson.loads(r.body)["data"]["alert"]["account_id"]]
                for r in received
                if r.ok
            ]
        finally:
            await producer.stop()
            await service.stop()
            secret_file.unlink()  # noqa: ASYNC240
    return {
        "alerts_per_s": count / (end - start),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "requests": float(len(received)),
    }


async def _assigned(service: Any) -> None:
    while not service._scores or not service._scores.assigned_partitions():  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # startup wait only, outside the measured window


async def bench_raw(count: int, concurrency: int) -> dict[str, float]:
    now = dt.datetime.now(dt.UTC)
    bodies = []
    for i in range(count):
        c = change(f"raw-{i}", now)
        (alert,) = evaluate(resolve(parse_config({})).rules, c, RuleState(), now).alerts
        bodies.append((alert.alert_id, crm.body(alert, breakdown_of(c), account_url=ACCOUNT_URL)))
    latencies: list[float] = []
    async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=10) as client:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        for item in bodies:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                alert_id, body = queue.get_nowait()
                headers = crm.signed_headers(
                    SECRET, crm.webhook_id(alert_id, "crm"), int(time.time()), body
                )
                t0 = time.monotonic()
                response = await client.post(receiver.url("/raw"), content=body, headers=headers)
                response.raise_for_status()
                latencies.append(time.monotonic() - t0)

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    return {
        "alerts_per_s": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "requests": float(len(latencies)),
    }


async def main(count: int, concurrency: int, rate: float) -> None:
    async with servers() as (kafka, server_url):
        name = f"bench_alerts_{uuid.uuid4().hex[:8]}"
        database_url = await create_database(server_url, name)
        topics = Topics(f"bench{uuid.uuid4().hex[:6]}.")
        await ensure_topics(kafka, topics.specs(3))
        try:
            await migrate(database_url)
            raw = await bench_raw(count, concurrency)
            service = await bench_service(kafka, database_url, topics, count, concurrency, rate)
        finally:
            await delete_topics(kafka, [s.name for s in topics.specs(3)])
            await drop_database(server_url, name)
    offered = f"offered at {rate:g}/s" if rate > 0 else "produced at once (a storm)"
    print(f"alerts bench: {count} alerts {offered}, concurrency {concurrency}, one process")
    print(f"{'':32} {'alerts/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    print(
        f"{'raw httpx POST (baseline)':32} {raw['alerts_per_s']:10.0f} "
        f"{raw['p50_ms']:9.1f} {raw['p99_ms']:9.1f}"
    )
    print(
        f"{'health.scores -> webhook':32} {service['alerts_per_s']:10.0f} "
        f"{service['p50_ms']:9.1f} {service['p99_ms']:9.1f}"
    )
    if rate <= 0:
        print(f"throughput ratio service/raw: {service['alerts_per_s'] / raw['alerts_per_s']:.2f}")
    print("service latency: record produced -> webhook received; raw: one request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="records/s offered (default 0: all at once)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.concurrency, args.rate))
