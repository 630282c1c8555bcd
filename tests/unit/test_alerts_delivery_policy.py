"""Delivery policy (pure): verdicts, backoff and jitter, Retry-After, giving up; SSRF checks."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from services.alerts.config import DeliveryPolicy
from services.alerts.delivery import (
    Answer,
    backoff_seconds,
    classify,
    decide,
    parse_retry_after,
)
from services.alerts.ssrf import UnsafeURLError, check_address, check_url

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
POLICY = DeliveryPolicy(
    max_attempts=5, max_age_hours=1, backoff_initial_seconds=1, backoff_max_seconds=60
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (429, "rate_limited"),
        (500, "transient"),
        (503, "transient"),
        (408, "transient"),
        (None, "transient"),
        (400, "permanent"),  # Slack invalid_payload / invalid_blocks
        (403, "permanent"),
        (404, "permanent"),  # Slack no_service / channel_not_found
        (410, "permanent"),  # Slack channel_is_archived; Standard Webhooks: disable
    ],
)
def test_classify(status: int | None, verdict: str) -> None:
    assert classify(status) == verdict


def test_unsafe_is_permanent() -> None:
    assert classify(None, unsafe=True) == "permanent"


def test_backoff_is_exponential_with_equal_jitter_and_capped() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (20, 60)]:
        for _ in range(50):
            delay = backoff_seconds(POLICY, attempts, rng)
            assert ceiling / 2 <= delay <= ceiling


def answer(status: int | None, retry_after: float | None = None) -> Answer:
    return Answer(status, None if status == 200 else "boom", 0.01, retry_after, classify(status))


def test_decide_retry_then_give_up_after_attempts() -> None:
    rng = random.Random(1)
    step = decide(POLICY, answer(500), attempts_done=1, created_at=NOW, now=NOW, rng=rng)
    assert step.outcome == "retry"
    assert step.next_attempt_at is not None
    assert NOW + dt.timedelta(seconds=0.5) <= step.next_attempt_at <= NOW + dt.timedelta(seconds=1)
    last = decide(POLICY, answer(500), attempts_done=5, created_at=NOW, now=NOW, rng=rng)
    assert last.outcome == "dead_lettered"
    assert last.reason == "gave up after 5 attempts: HTTP 500 (boom)"


def test_decide_honours_retry_after_and_caps_it() -> None:
    rng = random.Random(1)
    step = decide(POLICY, answer(429, 7), attempts_done=1, created_at=NOW, now=NOW, rng=rng)
    assert step.next_attempt_at == NOW + dt.timedelta(seconds=7)
    capped = POLICY.model_copy(update={"max_retry_after_seconds": 2})
    step = decide(capped, answer(429, 7000), attempts_done=1, created_at=NOW, now=NOW, rng=rng)
    assert step.next_attempt_at == NOW + dt.timedelta(seconds=2)


def test_decide_gives_up_when_too_old_and_on_permanent_answers() -> None:
    rng = random.Random(1)
    old = NOW - dt.timedelta(minutes=59, seconds=59.6)  # the next try (>= 0.5 s) is too late
    assert decide(
        POLICY, answer(503), attempts_done=1, created_at=old, now=NOW, rng=rng
    ).outcome == ("dead_lettered")
    gone = decide(POLICY, answer(410), attempts_done=1, created_at=NOW, now=NOW, rng=rng)
    assert gone.outcome == "dead_lettered"
    assert gone.reason is not None
    assert gone.reason.startswith("permanent failure: HTTP 410")
    assert decide(
        POLICY, answer(200), attempts_done=1, created_at=NOW, now=NOW, rng=rng
    ).outcome == ("delivered")


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3", NOW) == 3
    assert parse_retry_after("1.5", NOW) == 1.5
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", NOW) == 30
    assert parse_retry_after("garbage", NOW) is None
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_private_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_address(address)


def test_public_addresses_and_url_shapes() -> None:
    check_address("8.8.8.8")
    check_address("2606:4700:4700::1111")
    assert check_url("https://hooks.slack.com/services/x", allow_private=False) == (
        "hooks.slack.com",
        443,
    )
    with pytest.raises(UnsafeURLError, match="scheme must be https"):
        check_url("http://hooks.slack.com/x", allow_private=False)
    with pytest.raises(UnsafeURLError, match="not public"):
        check_url("https://169.254.169.254/latest", allow_private=False)
    with pytest.raises(UnsafeURLError, match="credentials"):
        check_url("https://user:pw@example.com/", allow_private=False)
    assert check_url("http://127.0.0.1:8099/slack", allow_private=True) == ("127.0.0.1", 8099)
