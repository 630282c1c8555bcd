"""The simulator's HTTP side against a hand-written ingest (httpx.MockTransport): batching,
Retry-After, refusals, and the loop that follows the clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import httpx
import orjson
import pytest

from healthscore.clock import ManualClock
from healthscore.simulate.runner import Simulation
from healthscore.simulate.sender import IngestRefusedError, IngestSender, RatePacer
from healthscore.simulate.traffic import SimEvent, Timeline, TrafficGenerator

PIVOT = dt.datetime(2025, 3, 3, 15, 0, tzinfo=dt.UTC)


class FakeIngest:
    """Answers with a scripted list of status codes, then 202; records every accepted batch."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.batches: list[list[dict[str, object]]] = []
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert request.headers["authorization"] == "Bearer k"
        if self.script:
            code = self.script.pop(0)
            return httpx.Response(code, headers={"retry-after": "0"}, text="busy")
        batch = orjson.loads(request.content)
        self.batches.append(batch)
        ids = [e["event_id"] for e in batch]
        return httpx.Response(202, json={"accepted": len(ids), "rejected": [], "event_ids": ids})


async def test_429_and_503_are_retried_after_retry_after() -> None:
    ingest = FakeIngest([429, 503, 429])
    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        sender = IngestSender("http://ingest.test", "k", client=client)
        accepted = await asyncio.wait_for(sender.send([{"event_id": "a"}]), 5)
    assert accepted == 1
    assert ingest.requests == 4
    assert sender.stats.throttled == 2
    assert sender.stats.unavailable == 1
    assert sender.stats.accepted == 1


async def test_a_refused_key_stops_the_sender() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(FakeIngest([401]))) as client:
        sender = IngestSender("http://ingest.test", "k", client=client)
        with pytest.raises(IngestRefusedError):
            await asyncio.wait_for(sender.send([{"event_id": "a"}]), 5)


async def test_rejected_items_are_counted_not_retried() -> None:
    def ingest(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            202, json={"accepted": 1, "rejected": [{"index": 1, "errors": []}], "event_ids": ["a"]}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        sender = IngestSender("http://ingest.test", "k", client=client)
        assert await asyncio.wait_for(sender.send([{}, {}]), 5) == 1
    assert (sender.stats.accepted, sender.stats.rejected) == (1, 1)


async def test_the_pacer_admits_a_rate() -> None:
    pacer = RatePacer(rate=10_000, burst=100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(30):
        await asyncio.wait_for(pacer.acquire(100), 5)
    # 3,000 events at 10,000/s with a burst of 100 take at least ~0.29 s.
    assert loop.time() - started >= 0.25


async def test_the_loop_sends_the_history_then_follows_the_clock() -> None:
    ingest = FakeIngest()
    clock = ManualClock(PIVOT)
    generator = TrafficGenerator.create(6, 5, Timeline.ending_at(PIVOT, 10))
    sent: list[SimEvent] = []
    progressed = asyncio.Event()

    def on_sent(events: Sequence[SimEvent], _at: float) -> None:
        sent.extend(events)
        progressed.set()

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        sender = IngestSender("http://ingest.test", "k", client=client)
        simulation = Simulation(
            generator,
            sender,
            clock,
            rate=1_000_000,
            batch_size=200,
            on_sent=on_sent,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(simulation.run(stop))
        await asyncio.wait_for(simulation.history_sent.wait(), 10)
        history = generator.events_between(generator.timeline.start, PIVOT)
        assert [e.event_id for e in sent] == [e.event_id for e in history]
        assert all(len(b) <= 200 for b in ingest.batches)

        clock.advance(dt.timedelta(days=2))
        live = generator.events_between(PIVOT, PIVOT + dt.timedelta(days=2))
        expected = len(history) + len(live)

        async def all_sent() -> None:
            while len(sent) < expected:
                progressed.clear()
                await progressed.wait()

        await asyncio.wait_for(all_sent(), 10)
        stop.set()
        await asyncio.wait_for(task, 5)
    sent_ids = [e["event_id"] for batch in ingest.batches for e in batch]
    assert sent_ids == [e.event_id for e in history + live]
    assert sender.stats.accepted == expected
