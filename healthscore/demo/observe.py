"""The demo's observers: ``health.scores`` and ``health.alerts`` read with aiokafka (no consumer
group: every partition from the beginning), the local receiver's recorded requests, and the
scorer's progress (its consumer group's lag on the event topics)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from healthscore.demo.state import DemoState
from healthscore.simulate.traffic import SimEvent
from healthscore.topics import Topics
from healthscore.webhook_receiver import WebhookReceiver
from schemas.messages import AlertRaised, ScoreChanged


class SendLog:
    """When each live event was sent, to measure scoring latency: event sent (the ingest
    request began) until its ``health.scores`` record was produced."""

    def __init__(self, horizon: float = 120.0) -> None:
        self._sent: dict[tuple[str, dt.datetime], float] = {}
        self._horizon = horizon
        self.recording = False

    def record(self, events: Sequence[SimEvent], at: float) -> None:
        if not self.recording:
            return
        for e in events:
            self._sent[(e.body["account_id"], e.occurred_at)] = at
        if len(self._sent) > 200_000:
            cutoff = at - self._horizon
            self._sent = {k: v for k, v in self._sent.items() if v >= cutoff}

    def latency(self, change: ScoreChanged, produced_at: float) -> float | None:
        if change.cause != "event" or change.event_time is None:
            return None
        sent = self._sent.pop((change.account_id, change.event_time), None)
        return None if sent is None else max(0.0, produced_at - sent)


def partitions(topics: Topics, partition_count: int, *names: str) -> list[TopicPartition]:
    """The partitions of the named topics, as the demo created them."""
    counts = {spec.name: spec.partitions for spec in topics.specs(partition_count)}
    return [TopicPartition(name, p) for name in names for p in range(counts[name])]


async def observe_topics(
    bootstrap: str,
    topics: Topics,
    partition_count: int,
    state: DemoState,
    sends: SendLog,
    stop: asyncio.Event,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        assigned = partitions(topics, partition_count, topics.scores, topics.alerts)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=250, max_records=2000)
            received = time.time()
            for tp, records in batches.items():
                for record in records:
                    if record.value is None:
                        continue
                    # The producer's timestamp is wall time; fall back to receipt when it is
                    # not (a producer that stamps simulated time).
                    stamp = record.timestamp / 1000
                    produced = stamp if abs(stamp - received) < 60 else received
                    with contextlib.suppress(ValidationError):
                        if tp.topic == topics.scores:
                            change = ScoreChanged.model_validate_json(record.value)
                            state.sim_now = max(state.sim_now or change.scored_at, change.scored_at)
                            state.on_score(change, received, sends.latency(change, produced))
                        else:
                            state.on_alert(AlertRaised.model_validate_json(record.value))
    finally:
        await consumer.stop()


def drain_receiver(receiver: WebhookReceiver, state: DemoState, seen: int) -> int:
    """Hand requests recorded since the ``seen``-th to the state; returns the new count."""
    requests = receiver.requests()
    for request in requests[seen:]:
        destination = request.path.strip("/").split("/")[0]
        if destination in ("slack", "crm"):
            state.on_webhook(destination, request.body, request.received_at)
    return len(requests)


async def end_offsets(bootstrap: str, assigned: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(assigned))
    finally:
        await consumer.stop()


async def remaining(bootstrap: str, group: str, targets: dict[TopicPartition, int]) -> int | None:
    """How many records ``group`` has yet to commit before it reaches ``targets`` (offsets per
    partition); None while the group has committed nothing on them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=list(targets))
    finally:
        await admin.close()
    offsets = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    if not offsets:
        return None if any(targets.values()) else 0
    return int(sum(max(0, end - offsets.get(tp, 0)) for tp, end in targets.items()))


async def commit_group_at_end(bootstrap: str, group: str, assigned: list[TopicPartition]) -> None:
    """Commit ``group``'s offsets on ``assigned`` at their current end, so a service that starts
    with that group begins after everything produced so far (the demo's pre-seeded history)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()
