"""Per-key token buckets: ``rate`` events per second, up to ``burst`` at once."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Charges each request its number of events against its API key's bucket.

    Buckets live in memory, per process: with N ingest replicas a key can send N times the rate.
    The number of buckets is bounded by the number of valid keys (only authenticated requests
    are charged).
    """

    def __init__(
        self, rate: float, burst: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, cost: int) -> float:
        """Charge ``cost`` events to ``key``: 0.0 when allowed, else the seconds to wait.

        A refused request is not charged, and waiting the returned time is enough for it to pass
        (when nothing else is charged meanwhile).
        """
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        cost = min(cost, self.burst)  # a request larger than the burst waits for a full bucket
        # The epsilon absorbs float rounding: waiting exactly the returned time must suffice.
        if bucket.tokens + 1e-9 >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
