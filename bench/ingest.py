"""Ingest throughput and latency over HTTP, next to a raw aiokafka producer in the same run.

Starts ``healthscore ingest`` as its own process (the real composition root, authenticated with a
bootstrap key: the key cache makes that the same hot path as a stored key), then for batches of
1 and 100 events posts from ``--concurrency`` clients for ``--seconds`` and prints accepted
events/s and p50/p99 request latency. In the same run a plain aiokafka producer (acks=all,
idempotent, same values, same keys, same concurrency, one await per "request") sends the same
events; the ratio ingest/raw is the figure to watch.

Kafka: ``KAFKA_BOOTSTRAP_SERVERS`` when set (e.g. ``. .stack.env``), else a LocalKafka started
here. PostgreSQL is not needed (the bootstrap key is checked in memory).

    .venv/bin/python bench/ingest.py [--seconds 8] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from healthscore.kafka_admin import delete_topics, ensure_topics  # noqa: E402
from healthscore.local import LocalKafka  # noqa: E402
from healthscore.local.process import free_port  # noqa: E402
from healthscore.topics import Topics  # noqa: E402
from schemas.events import EVENT_TYPES, encode_event, event_from_obj  # noqa: E402

EXAMPLES: dict[str, Any] = {
    t: json.loads((ROOT / "schemas/examples" / f"{t}.json").read_text()) for t in EVENT_TYPES
}


def make_events(count: int, run: str) -> list[dict[str, Any]]:
    """A realistic mix: mostly usage, some of every other type, 500 accounts."""
    weights = ["usage"] * 14 + ["ticket", "billing", "email", "feedback", "account", "usage"]
    return [
        {
            **EXAMPLES[weights[i % len(weights)]],
            "event_id": f"{run}-{i}",
            "account_id": f"acct-{i % 500}",
        }
        for i in range(count)
    ]


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client: the bench's own overhead stays small next to the
    server's (httpx costs about a millisecond per request, which would blur the figure)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.reader is None or self.reader.at_eof():  # the server closes idle connections
            await self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.writer is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.events = 0
        self.elapsed = 0.0
        self.errors: dict[str, int] = {}
        self.server_cpu: float | None = None  # seconds of ingest-process CPU during the run

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
        rate = self.events / self.elapsed if self.elapsed else 0.0
        errors = f"  errors {self.errors}" if self.errors else ""
        cpu = (
            f"  server CPU {self.server_cpu / self.events * 1e6:.0f} us/event"
            if self.server_cpu is not None and self.events
            else ""
        )
        return (
            f"{self.name:<28} {rate:>10,.0f} events/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
            f"  ({len(lat)} requests){cpu}{errors}"
        )

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed else 0.0


async def drive(
    name: str,
    batches: list[list[dict[str, Any]]],
    concurrency: int,
    seconds: float,
    send: Callable[[list[dict[str, Any]]], Awaitable[int]],
) -> Result:
    """Run ``send`` over ``batches`` from ``concurrency`` workers until time or batches run out."""
    result = Result(name)
    queue = iter(batches)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        for batch in queue:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            try:
                accepted = await send(batch)
            except Exception as exc:
                result.errors[repr(exc)[:120]] = result.errors.get(repr(exc)[:120], 0) + 1
                continue
            result.latencies.append(time.perf_counter() - started)
            result.events += accepted

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - began
    return result


@contextlib.asynccontextmanager
async def kafka() -> AsyncIterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    async with LocalKafka() as local:
        yield local.bootstrap_servers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def ingest_process(bootstrap: str, prefix: str, token: str) -> AsyncIterator[tuple[int, int]]:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "HEALTHSCORE_TOPIC_PREFIX": prefix,
        "HEALTHSCORE_BOOTSTRAP_API_KEY": token,
        "HEALTHSCORE_INGEST_RATE_LIMIT": "1e9",
        "HEALTHSCORE_INGEST_RATE_BURST": "1000000000",
        # Keys come from the bootstrap key; a database is not part of the hot path.
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none"
        ),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "healthscore.cli", "ingest", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning",
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("healthscore ingest did not start")
                await asyncio.sleep(0.1)
        yield port, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


Batch = list[dict[str, Any]]


def prepare(
    size: int, run: str, topics: Topics
) -> tuple[list[Batch], dict[int, Any], dict[int, Any]]:
    """Batches of ``size`` events, each with its HTTP body and its raw Kafka records ready."""
    events = make_events(60_000 if size == 1 else 400_000, f"{run}-{size}")
    batches = [events[i : i + size] for i in range(0, len(events), size)]
    bodies = {id(b): json.dumps(b[0] if size == 1 else b).encode() for b in batches}
    records = {
        id(b): [
            (topics.event(e["type"]), e["account_id"].encode(), encode_event(event_from_obj(e)))
            for e in b
        ]
        for b in batches
    }
    return batches, bodies, records


async def bench(seconds: float, concurrency: int) -> list[Result]:
    results: list[Result] = []
    run = uuid.uuid4().hex[:8]
    async with kafka() as bootstrap:
        topics = Topics(f"bench{run}.")
        await ensure_topics(bootstrap, topics.specs(6))
        token = secrets.token_urlsafe(32)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            max_batch_size=512 * 1024,
            linger_ms=1,
        )
        pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
        try:
            async with ingest_process(bootstrap, topics.prefix, token) as (port, pid):
                for _ in range(concurrency):
                    pool.put_nowait(HttpConnection("127.0.0.1", port, token))
                await producer.start()
                for size in (1, 100):
                    batches, bodies, records = prepare(size, run, topics)

                    async def post(batch: Batch, bodies: dict[int, Any] = bodies) -> int:
                        connection = await pool.get()
                        try:
                            status, answer = await connection.post(bodies[id(batch)])
                        finally:
                            pool.put_nowait(connection)
                        if status != 202:
                            raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
                        accepted: int = json.loads(answer)["accepted"]
                        return accepted

                    async def raw(batch: Batch, records: dict[int, Any] = records) -> int:
                        futures = [
                            await producer.send(topic, value=value, key=key)
                            for topic, key, value in records[id(batch)]
                        ]
                        await asyncio.gather(*futures)
                        return len(futures)

                    # Warm both paths up (connections, metadata for every topic).
                    await drive("warmup", batches[-50:], concurrency, 5, post)
                    await drive("warmup", batches[-50:], concurrency, 5, raw)
                    half = len(batches) // 2
                    cpu_before = cpu_seconds(pid)
                    http = await drive(
                        f"ingest HTTP, batch {size}", batches[:half], concurrency, seconds, post
                    )
                    http.server_cpu = cpu_seconds(pid) - cpu_before
                    direct = await drive(
                        f"raw aiokafka, batch {size}", batches[half:], concurrency, seconds, raw
                    )
                    results += [http, direct]
                    print(http.line(), flush=True)
                    print(direct.line(), flush=True)
                    print(f"{'':<28} ratio ingest/raw: {http.rate / direct.rate:.2f}", flush=True)
        finally:
            while not pool.empty():
                await pool.get_nowait().close()
            await producer.stop()
            await delete_topics(bootstrap, [spec.name for spec in topics.specs(6)])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent requests")
    args = parser.parse_args()
    print(
        f"ingest bench: {args.concurrency} concurrent clients, {args.seconds:.0f} s per row, "
        f"{os.cpu_count()} CPUs (server, client and broker share them)",
        flush=True,
    )
    # The server runs on uvloop when it is installed (uvicorn's default); so does the client.
    try:
        import uvloop
    except ImportError:
        asyncio.run(bench(args.seconds, args.concurrency))
    else:
        uvloop.run(bench(args.seconds, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
