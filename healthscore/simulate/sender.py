"""Deliver simulated events to an ingest service over HTTP.

Batches go to ``POST {url}/v1/events``. A ``429`` or ``503`` answer is retried after its
``Retry-After`` (the ingest's rate limit and Kafka outages are part of what the simulator
exercises); connection errors are retried with a capped backoff; ``401``/``403`` stop the run,
since retrying with the same key cannot succeed. Events the ingest rejects (``422`` items) are
counted, never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

# Retry-After values above this are clamped: the simulator would rather retry sooner.
_MAX_RETRY_AFTER = 10.0


class IngestRefusedError(RuntimeError):
    """The ingest refused the API key (401/403) or answered something unexpected."""


@dataclass
class SendStats:
    batches: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    throttled: int = 0  # 429 answers
    unavailable: int = 0  # 503 answers and connection errors
    rejection_reasons: dict[str, int] = field(default_factory=dict)


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return min(_MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        return default


class RatePacer:
    """A token bucket: ``acquire(n)`` returns once ``n`` events fit under ``rate`` events/s."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.capacity = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.capacity
        self._updated = time.monotonic()

    async def acquire(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            # A batch bigger than the bucket may go once the bucket is full.
            if self._tokens >= min(n, self.capacity):
                self._tokens -= n
                return
            await asyncio.sleep((min(n, self.capacity) - self._tokens) / self.rate)


class IngestSender:
    """Posts batches of events to one ingest service with one API key."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/v1/events"
        self._headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        self.stats = SendStats()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> IngestSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, events: Sequence[dict[str, Any]]) -> int:
        """Deliver one batch; retries until the ingest answers 202 or 422. Returns how many
        events it accepted."""
        body = orjson.dumps(list(events))
        backoff = 0.2
        while True:
            try:
                response = await self._client.post(
                    self.endpoint, content=body, headers=self._headers
                )
            except httpx.TransportError:
                self.stats.unavailable += 1
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            if response.status_code in (429, 503):
                if response.status_code == 429:
                    self.stats.throttled += 1
                else:
                    self.stats.unavailable += 1
                await asyncio.sleep(_retry_after(response, backoff))
                backoff = min(5.0, backoff * 2)
                continue
            if response.status_code in (401, 403):
                raise IngestRefusedError(f"ingest refused the API key ({response.status_code})")
            if response.status_code not in (202, 422):
                raise IngestRefusedError(f"ingest answered {response.status_code} to a batch")
            return self._record(len(events), response)

    def _record(self, count: int, response: httpx.Response) -> int:
        self.stats.batches += 1
        self.stats.sent += count
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        accepted = count if response.status_code == 202 else 0
        if isinstance(answer, dict):
            rejected_items = answer.get("rejected") or answer.get("errors") or []
            if isinstance(answer.get("accepted"), int):
                accepted = answer["accepted"]
            elif isinstance(rejected_items, list):
                accepted = count - len(rejected_items) if response.status_code == 202 else 0
        rejected = count - accepted
        self.stats.accepted += accepted
        self.stats.rejected += rejected
        if rejected:
            reason = str(response.status_code)
            self.stats.rejection_reasons[reason] = (
                self.stats.rejection_reasons.get(reason, 0) + rejected
            )
        return accepted
