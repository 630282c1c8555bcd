"""Delivery: one worker task per destination drains its part of the outbox.

Each :class:`DestinationWorker` claims due deliveries of its destination, sends them through its
:class:`Channel` (Slack webhook, signed CRM webhook, or the ``health.alerts`` topic) and records
every attempt. Destinations never wait for each other: a hung or failing receiver only slows its
own worker, and the consumer of ``health.scores`` never waits for any of them (it only writes the
outbox).

Policy (pure functions, unit-tested):

- :func:`classify` turns an answer into a verdict: 2xx delivered; 429 rate limited (honour
  ``Retry-After``); 408, 425, 5xx, timeouts and connection errors transient; any other 4xx
  (Slack's 400 ``invalid_payload``, 403, 404 ``no_service``, 410 ``channel_is_archived``) and an
  unsafe address permanent: dead-lettered at once, not retried as if transient.
- :func:`decide` picks the next step: exponential backoff with equal jitter
  (``d = min(max, initial * 2**(n-1))``, wait ``d/2 + uniform(0, d/2)``), a ``Retry-After``
  honoured in full (capped by ``max_retry_after_seconds``), and dead-lettering once the attempts
  or the age (``max_age_hours``) run out.
- Slack pacing: at most one request per ``min_interval_seconds`` per webhook; when more than
  ``coalesce_above`` alerts wait, up to ``coalesce_max`` go out as one digest message.
- After ``unhealthy_after_failures`` consecutive failures a destination is marked unhealthy
  (gauge 0, one log line) and its worker sends one delivery at a time until an answer succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from healthscore.clock import Clock
from services.alerts import crm, slack
from services.alerts.config import DeliveryPolicy
from services.alerts.metrics import AlertsMetrics
from services.alerts.ssrf import UnsafeURLError
from services.alerts.store import AlertStore, AttemptRecord, ClaimedDelivery, Outcome

log = logging.getLogger("healthscore.alerts.delivery")

Verdict = Literal["delivered", "transient", "rate_limited", "permanent"]
TRANSIENT_4XX = frozenset({408, 425})


@dataclass(frozen=True)
class Answer:
    """What one attempt got back."""

    status_code: int | None
    error: str | None
    latency_seconds: float
    retry_after_seconds: float | None = None
    verdict: Verdict = "transient"


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    next_attempt_at: dt.datetime | None = None
    reason: str | None = None


def classify(status_code: int | None, *, unsafe: bool = False) -> Verdict:
    if unsafe:
        return "permanent"
    if status_code is None:
        return "transient"
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == 429:
        return "rate_limited"
    if status_code >= 500 or status_code in TRANSIENT_4XX:
        return "transient"
    return "permanent"


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(policy: DeliveryPolicy, attempts_done: int, rng: random.Random) -> float:
    ceiling: float = min(
        policy.backoff_max_seconds, policy.backoff_initial_seconds * 2 ** (attempts_done - 1)
    )
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def decide(
    policy: DeliveryPolicy,
    answer: Answer,
    *,
    attempts_done: int,
    created_at: dt.datetime,
    now: dt.datetime,
    rng: random.Random,
) -> Step:
    """The next step of a delivery after ``attempts_done`` attempts, the last one ``answer``."""
    if answer.verdict == "delivered":
        return Step("delivered")
    what = f"HTTP {answer.status_code}" if answer.status_code is not None else "no answer"
    if answer.error:
        what += f" ({answer.error})"
    if answer.verdict == "permanent":
        return Step("dead_lettered", reason=f"permanent failure: {what}")
    if attempts_done >= policy.max_attempts:
        return Step("dead_lettered", reason=f"gave up after {attempts_done} attempts: {what}")
    delay = backoff_seconds(policy, attempts_done, rng)
    if answer.verdict == "rate_limited" and answer.retry_after_seconds is not None:
        delay = min(answer.retry_after_seconds, policy.max_retry_after_seconds)
    next_at = now + dt.timedelta(seconds=delay)
    if next_at > created_at + dt.timedelta(hours=policy.max_age_hours):
        return Step(
            "dead_lettered",
            reason=f"gave up: older than {policy.max_age_hours:g} h by the next attempt: {what}",
        )
    return Step("retry", next_attempt_at=next_at)


class Channel(Protocol):
    """Sends one group of deliveries as one attempt (one HTTP request or one Kafka batch)."""

    async def send(self, group: Sequence[ClaimedDelivery], now: dt.datetime) -> Answer: ...


async def _post(
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    now: dt.datetime,
) -> Answer:
    started = time.perf_counter()
    try:
        response = await client.post(url, content=content, headers=headers, timeout=timeout_seconds)
    except UnsafeURLError as exc:
        return Answer(
            None, f"unsafe destination: {exc}", time.perf_counter() - started, None, "permanent"
        )
    except httpx.TimeoutException as exc:
        return Answer(None, f"timeout ({type(exc).__name__})", time.perf_counter() - started)
    except httpx.HTTPError as exc:
        # The message of a transport error names no URL (a Slack URL is a secret).
        return Answer(None, f"{type(exc).__name__}: {exc}"[:200], time.perf_counter() - started)
    latency = time.perf_counter() - started
    verdict = classify(response.status_code)
    error = None if verdict == "delivered" else response.text[:200] or None
    retry_after = (
        parse_retry_after(response.headers.get("retry-after"), now)
        if response.status_code == 429
        else None
    )
    return Answer(response.status_code, error, latency, retry_after, verdict)


class SlackChannel:
    """A Slack incoming webhook: one alert per message, or a digest for a group of several."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, *, account_url: str, timeout: float
    ) -> None:
        self._client = client
        self._url = url
        self._account_url = account_url
        self._timeout = timeout

    async def send(self, group: Sequence[ClaimedDelivery], now: dt.datetime) -> Answer:
        if len(group) == 1:
            message = slack.alert_message(group[0].alert, account_url=self._account_url)
        else:
            message = slack.digest_message([d.alert for d in group], account_url=self._account_url)
        headers = {"content-type": "application/json"}
        return await _post(
            self._client, self._url, orjson.dumps(message), headers, self._timeout, now
        )


class WebhookChannel:
    """A CRM webhook: JSON body signed per Standard Webhooks, one alert per request."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str,
        *,
        account_url: str,
        timeout: float,
    ) -> None:
        self._client = client
        self._url = url
        self._secret = secret
        self._account_url = account_url
        self._timeout = timeout

    async def send(self, group: Sequence[ClaimedDelivery], now: dt.datetime) -> Answer:
        (delivery,) = group
        body = crm.body(delivery.alert, delivery.breakdown, account_url=self._account_url)
        headers = crm.signed_headers(self._secret, delivery.webhook_id, int(now.timestamp()), body)
        return await _post(self._client, self._url, body, headers, self._timeout, now)


class KafkaChannel:
    """The ``health.alerts`` topic: AlertRaised JSON keyed by account id, sent as one batch."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, group: Sequence[ClaimedDelivery], now: dt.datetime) -> Answer:
        started = time.perf_counter()
        try:
            futures = [
                await self._producer.send(
                    self._topic,
                    key=d.alert.account_id.encode(),
                    value=d.alert.model_dump_json().encode(),
                )
                for d in group
            ]
            await asyncio.gather(*futures)
        except Exception as exc:  # any Kafka error: the batch is retried (at-least-once)
            return Answer(None, f"{type(exc).__name__}: {exc}"[:200], time.perf_counter() - started)
        return Answer(None, None, time.perf_counter() - started, None, "delivered")


@dataclass(frozen=True)
class WorkerOptions:
    min_interval_seconds: float = 0.0
    batch_size: int = 1  # deliveries claimed per round
    concurrency: int = 1  # groups sent at once
    coalesce_above: int | None = None  # Slack: digest when more than this many wait
    one_group: bool = False  # Kafka: the whole claimed batch is one group
    timeout_seconds: float = 10.0
    poll_interval_seconds: float = 1.0


class DestinationWorker:
    """Drains one destination's outbox until cancelled."""

    def __init__(
        self,
        name: str,
        channel: Channel,
        store: AlertStore,
        policy: DeliveryPolicy,
        metrics: AlertsMetrics,
        *,
        options: WorkerOptions,
        wall: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self._channel = channel
        self._store = store
        self._policy = policy
        self._metrics = metrics
        self._options = options
        self._wall = wall
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._next_send = 0.0  # monotonic time before which no request may start (pacing)
        self._pace_lock = asyncio.Lock()
        self.consecutive_failures = 0
        self.healthy = True
        metrics.register_destination(name)

    def wake(self) -> None:
        """New deliveries were written: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not kill the worker; leased rows come back after the lease.
                log.exception("delivery round failed", extra={"destination": self.name})
                handled = 0
            if handled:
                continue
            await self._idle()

    async def _idle(self) -> None:
        wait = self._options.poll_interval_seconds
        try:
            due = await self._store.next_due(self.name)
            self._metrics.pending.labels(self.name).set(await self._store.pending_count(self.name))
        except Exception:
            log.exception("outbox poll failed", extra={"destination": self.name})
            due = None
        if due is not None:
            wait = min(wait, max(0.0, (due - self._wall.now()).total_seconds()))
        if wait <= 0:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)

    def _lease_until(self, count: int, now: dt.datetime) -> dt.datetime:
        groups = count if self._options.coalesce_above is None else 1
        per_group = self._options.timeout_seconds + self._options.min_interval_seconds
        seconds = per_group * max(1, groups) / max(1, self._options.concurrency) + 30
        return now + dt.timedelta(seconds=seconds)

    async def run_once(self) -> int:
        """One round: claim due deliveries, send them, record the attempts. Returns the number
        of deliveries handled (0: nothing was due)."""
        now = self._wall.now()
        limit = self._options.batch_size if self.healthy else 1
        claimed = await self._store.claim(self.name, now, limit, self._lease_until(limit, now))
        if not claimed:
            return 0
        try:
            return await self._deliver(claimed, now)
        except asyncio.CancelledError:
            # Stopping mid-round: hand the unrecorded rows back now rather than after the lease,
            # so the next process retries them at once (a request already sent may repeat:
            # at-least-once, same webhook-id).
            await asyncio.shield(self._store.release([d.id for d in claimed]))
            raise

    async def _deliver(self, claimed: list[ClaimedDelivery], now: dt.datetime) -> int:
        expired = [d for d in claimed if self._expired(d, now)]
        expired_ids = {d.id for d in expired}
        live = [d for d in claimed if d.id not in expired_ids]
        age = self._policy.max_age_hours
        records: list[AttemptRecord] = [
            AttemptRecord(
                delivery_id=d.id,
                attempt=d.attempts + 1,
                started_at=now,
                latency_seconds=0.0,
                status_code=None,
                error=None,
                outcome="dead_lettered",
                next_attempt_at=None,
                dead_reason=f"expired: older than {age:g} h before an attempt",
                finished_at=now,
                attempted=False,
            )
            for d in expired
        ]
        for group_records in await self._send_groups(self._groups(live)):
            records.extend(group_records)
        await self._store.record(records)
        for r in records:
            self._metrics.deliveries.labels(self.name, r.outcome).inc()
            if r.outcome == "dead_lettered":
                self._metrics.dead_letters.labels(self.name).inc()
                log.warning(
                    "delivery dead-lettered",
                    extra={
                        "destination": self.name,
                        "delivery_id": r.delivery_id,
                        "reason": r.dead_reason,
                    },
                )
        return len(claimed)

    def _expired(self, delivery: ClaimedDelivery, now: dt.datetime) -> bool:
        return now - delivery.created_at > dt.timedelta(hours=self._policy.max_age_hours)

    def _groups(self, live: list[ClaimedDelivery]) -> list[list[ClaimedDelivery]]:
        if not live:
            return []
        if self._options.one_group:
            return [live]
        above = self._options.coalesce_above
        if above is not None and len(live) > above:
            return [live]
        return [[d] for d in live]

    async def _send_groups(self, groups: list[list[ClaimedDelivery]]) -> list[list[AttemptRecord]]:
        if self._options.concurrency <= 1:
            return [await self._send(g) for g in groups]
        semaphore = asyncio.Semaphore(self._options.concurrency)

        async def bounded(group: list[ClaimedDelivery]) -> list[AttemptRecord]:
            async with semaphore:
                return await self._send(group)

        return list(await asyncio.gather(*(bounded(g) for g in groups)))

    async def _pace(self) -> None:
        interval = self._options.min_interval_seconds
        if interval <= 0:
            return
        async with self._pace_lock:
            delay = self._next_send - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing to the receiver's rate, not synchronisation
            self._next_send = time.monotonic() + interval

    async def _send(self, group: list[ClaimedDelivery]) -> list[AttemptRecord]:
        await self._pace()
        started = self._wall.now()
        answer = await self._channel.send(group, started)
        finished = self._wall.now()
        self._metrics.attempts.labels(self.name).inc()
        self._metrics.latency.labels(self.name).observe(answer.latency_seconds)
        self._note_health(answer)
        records = []
        for d in group:
            step = decide(
                self._policy,
                answer,
                attempts_done=d.attempts + 1,
                created_at=d.created_at,
                now=finished,
                rng=self._rng,
            )
            records.append(
                AttemptRecord(
                    delivery_id=d.id,
                    attempt=d.attempts + 1,
                    started_at=started,
                    latency_seconds=answer.latency_seconds,
                    status_code=answer.status_code,
                    error=answer.error,
                    outcome=step.outcome,
                    next_attempt_at=step.next_attempt_at,
                    dead_reason=step.reason,
                    finished_at=finished,
                )
            )
        return records

    def _note_health(self, answer: Answer) -> None:
        if answer.verdict == "delivered":
            self.consecutive_failures = 0
            if not self.healthy:
                log.info("destination healthy again", extra={"destination": self.name})
            self.healthy = True
            self._metrics.healthy.labels(self.name).set(1)
            return
        self.consecutive_failures += 1
        gone = answer.status_code in (404, 410)
        if self.healthy and (
            gone or self.consecutive_failures >= self._policy.unhealthy_after_failures
        ):
            self.healthy = False
            self._metrics.healthy.labels(self.name).set(0)
            log.warning(
                "destination unhealthy",
                extra={
                    "destination": self.name,
                    "consecutive_failures": self.consecutive_failures,
                    "status_code": answer.status_code,
                },
            )
