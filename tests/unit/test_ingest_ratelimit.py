"""Token buckets per API key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.ratelimit import TokenBucketLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(10, 100, monotonic=clock)
    assert limiter.take("k", 100) == 0.0
    assert limiter.take("k", 5) == pytest.approx(0.5)
    assert limiter.take("other", 100) == 0.0
    clock.now = 0.5
    assert limiter.take("k", 5) == 0.0
    assert limiter.take("k", 1) == pytest.approx(0.1)
    clock.now = 1000.0
    assert limiter.take("k", 100) == 0.0  # refills up to the burst only
    assert limiter.take("k", 1) > 0


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


@given(
    rate=st.floats(0.5, 1000),
    burst=st.integers(1, 1000),
    costs=st.lists(st.tuples(st.integers(1, 1500), st.floats(0, 5)), max_size=40),
)
def test_waiting_the_answer_is_enough(
    rate: float, burst: int, costs: list[tuple[int, float]]
) -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate, burst, monotonic=clock)
    admitted = 0.0
    for cost, pause in costs:
        clock.now += pause
        wait = limiter.take("k", cost)
        if wait > 0:
            clock.now += wait
            assert limiter.take("k", cost) == 0.0
        admitted += min(cost, burst)
    # Never more than the burst plus what the rate refilled.
    assert admitted <= burst + rate * clock.now + 1e-6 * max(1.0, admitted)
