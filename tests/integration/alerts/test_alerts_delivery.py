"""The alerts service against a real broker, a real database and real local HTTP receivers."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk.models.blocks import Block
from standardwebhooks.webhooks import Webhook

from healthscore.db.tables.alerts import alert_delivery_attempts, alerts
from healthscore.topics import Topics
from healthscore.webhook_receiver import Close, Hang, Respond, WebhookReceiver
from schemas.messages import AlertRaised
from services.alerts.config import InvalidConfigError
from tests.integration.alerts.conftest import (
    SECRET,
    delivery_states,
    make_config,
    make_settings,
    publish,
    running,
    score_changed,
)
from tests.support import consume, wait_for

pytestmark = pytest.mark.integration


def _acct() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


async def test_red_alert_reaches_slack_crm_topic_and_log(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    db: Any,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path,
        [
            {"name": "cs-slack", "type": "slack", "url": receiver.url("/slack")},
            {"name": "crm", "type": "webhook", "url": receiver.url("/crm")},
        ],
    )
    settings = make_settings(kafka_bootstrap, database_url, topics)
    account = _acct()
    async with running(settings, config):
        await publish(
            kafka_bootstrap, topics, score_changed(account, "amber", "red", name="Acme <Corp>")
        )
        slack_reqs = await receiver.wait_for(lambda r: len(r) >= 1, path="/slack", within=30)
        crm_reqs = await receiver.wait_for(lambda r: len(r) >= 1, path="/crm", within=30)
        records = await consume(kafka_bootstrap, topics.alerts, until=lambda r: len(r) >= 1)
        await wait_for(lambda: _all_delivered(db), timeout=20, message="every delivery delivered")

    message = slack_reqs[0].json()
    blocks = Block.parse_all(message["blocks"])
    for block in blocks:
        block.validate_json()
    assert len(blocks) <= 50
    header = message["blocks"][0]["text"]["text"]
    assert "Acme <Corp>" in header  # plain_text: no escaping needed
    assert "entered Red" in header
    text = str(message)
    assert "weekly active users fell from 40 to 2 (good \u2192 poor)" in text
    assert "ann@example.com" in text
    assert "2026-01-31" in text
    assert f"http://127.0.0.1:8000/v1/accounts/{account}" in text

    crm = crm_reqs[0]
    payload = Webhook(SECRET).verify(crm.body, dict(crm.headers))
    assert payload["type"] == "health.alert"
    assert payload["data"]["alert"]["account_id"] == account
    assert payload["data"]["breakdown"]["indicators"][0]["name"] == "weekly_active_users"

    raised = AlertRaised.model_validate_json(records[0].value or b"")
    assert (raised.account_id, raised.rule) == (account, "red_alert")
    assert crm.webhook_id
    assert crm.webhook_id.startswith("msg_")
    async with db.connect() as conn:
        stored = (await conn.execute(sa.select(alerts.c.alert_id, alerts.c.rule))).all()
        attempts = (await conn.execute(sa.select(alert_delivery_attempts))).all()
    assert [tuple(r) for r in stored] == [(raised.alert_id, "red_alert")]
    assert len(attempts) == 3
    assert all(a.outcome == "delivered" for a in attempts)


async def _all_delivered(db: Any) -> bool:
    states = await delivery_states(db)
    return bool(states) and all(s[2] == "delivered" for s in states)


async def test_failure_patterns_end_delivered_once_or_dead_lettered(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    db: Any,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    patterns: dict[str, list[Any]] = {
        "/errors": [Respond(500), Respond(503)],
        "/limited": [Respond.rate_limited(0.3)],
        "/hang": [Hang(30)],
        "/close": [Close(), Close()],
        "/always500": [Respond(500)] * 10,
        "/archived": [Respond.slack_error(410, "channel_is_archived")] * 10,
        "/invalid": [Respond.slack_error(400, "invalid_payload")] * 10,
    }
    for path, behaviours in patterns.items():
        receiver.program(path, *behaviours)
    destinations = [
        {"name": "errors", "type": "webhook", "url": receiver.url("/errors")},
        {
            "name": "limited",
            "type": "slack",
            "url": receiver.url("/limited"),
            "min_interval_seconds": 0,
        },
        {"name": "hang", "type": "webhook", "url": receiver.url("/hang"), "timeout_seconds": 0.5},
        {"name": "close", "type": "webhook", "url": receiver.url("/close")},
        {
            "name": "always500",
            "type": "webhook",
            "url": receiver.url("/always500"),
            "max_attempts": 3,
        },
        {"name": "archived", "type": "slack", "url": receiver.url("/archived")},
        {"name": "invalid", "type": "slack", "url": receiver.url("/invalid")},
    ]
    config = make_config(tmp_path, destinations)
    settings = make_settings(kafka_bootstrap, database_url, topics)
    async with running(settings, config) as service:
        started = time.monotonic()
        await publish(kafka_bootstrap, topics, score_changed(_acct(), "green", "red"))

        async def settled() -> list[tuple[str, str, str, int]] | None:
            states = await delivery_states(db)
            done = len(states) == 8 and all(s[2] != "pending" for s in states)
            return states if done else None

        states = await wait_for(settled, timeout=30, message="every delivery settled")
        by_destination = {s[1]: (s[2], s[3]) for s in states}
        elapsed = time.monotonic() - started
        health = service.destination_health()

    assert by_destination == {
        "health.alerts": ("delivered", 1),
        "errors": ("delivered", 3),
        "limited": ("delivered", 2),
        "hang": ("delivered", 2),
        "close": ("delivered", 2 + 1),
        "always500": ("dead_lettered", 3),
        "archived": ("dead_lettered", 1),
        "invalid": ("dead_lettered", 1),
    }
    # Exactly one successful request per webhook id on every path that delivered.
    for path in ("/errors", "/limited", "/hang", "/close"):
        reqs = receiver.requests(path)
        assert sum(r.ok for r in reqs) == 1, path
    ids = Counter(r.webhook_id for r in receiver.requests("/errors"))
    assert len(ids) == 1  # every attempt reused the same webhook-id
    limited = receiver.requests("/limited")
    assert limited[1].received_monotonic - limited[0].received_monotonic >= 0.3
    assert len(receiver.requests("/always500")) == 3
    assert health["archived"] is False
    assert health["errors"] is True
    assert elapsed < 30
    async with db.connect() as conn:
        reasons = dict(
            (
                await conn.execute(
                    sa.text(
                        "SELECT destination, dead_reason FROM alert_deliveries "
                        "WHERE status = 'dead_lettered'"
                    )
                )
            ).all()
        )
    assert reasons["archived"].startswith("permanent failure: HTTP 410 (channel_is_archived)")
    assert reasons["always500"].startswith("gave up after 3 attempts")


async def test_dead_receiver_does_not_delay_a_healthy_one(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    db: Any,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    receiver.program("/dead", then=Hang(60))
    config = make_config(
        tmp_path,
        [
            {"name": "dead", "type": "webhook", "url": receiver.url("/dead"), "timeout_seconds": 5},
            {"name": "healthy", "type": "slack", "url": receiver.url("/healthy")},
        ],
    )
    settings = make_settings(kafka_bootstrap, database_url, topics)
    async with running(settings, config):
        changes = [score_changed(_acct(), "green", "red") for _ in range(3)]
        await publish(kafka_bootstrap, topics, *changes)
        healthy = await receiver.wait_for(
            lambda r: sum(x.ok for x in r) >= 3, path="/healthy", within=20
        )
        dead = await receiver.wait_for(lambda r: len(r) >= 1, path="/dead", within=20)
    # Every alert reached the healthy destination while the dead one was still hanging on its
    # first request (which takes 5 s to time out).
    assert healthy[-1].received_monotonic - dead[0].received_monotonic < 4.5


async def test_restart_mid_retry_loses_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    db: Any,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    receiver.program("/flaky", then=Respond(500))
    config = make_config(
        tmp_path,
        [{"name": "flaky", "type": "webhook", "url": receiver.url("/flaky")}],
        delivery={"max_attempts": 50, "backoff_initial_seconds": 0.2, "backoff_max_seconds": 0.4},
    )
    settings = make_settings(kafka_bootstrap, database_url, topics)
    accounts = [_acct() for _ in range(4)]
    async with running(settings, config):
        await publish(
            kafka_bootstrap, topics, *(score_changed(a, "green", "red") for a in accounts)
        )
        await receiver.wait_for(
            lambda r: len({x.webhook_id for x in r}) == 4, path="/flaky", within=30
        )
    # Stopped mid-retry: all four are pending. The receiver recovers; a new process resumes.
    states = await delivery_states(db)
    assert sorted(s[2] for s in states if s[1] == "flaky") == ["pending"] * 4
    receiver.program("/flaky", then=Respond(200))
    async with running(settings, config):
        await wait_for(
            lambda: _all_delivered(db), timeout=60, message="all delivered after restart"
        )
    delivered = Counter(r.webhook_id for r in receiver.requests("/flaky") if r.ok)
    assert len(delivered) == 4
    assert set(delivered.values()) == {1}
    async with db.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(alerts))
    assert count == 4  # the second process re-read nothing it had already evaluated


async def test_alert_storm_is_paced_and_coalesced_for_slack(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    db: Any,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path,
        [
            {
                "name": "slack",
                "type": "slack",
                "url": receiver.url("/storm"),
                "min_interval_seconds": 1.0,
                "coalesce_above": 3,
            }
        ],
    )
    settings = make_settings(kafka_bootstrap, database_url, topics)
    async with running(settings, config):
        await publish(
            kafka_bootstrap, topics, *(score_changed(_acct(), "green", "red") for _ in range(30))
        )
        await wait_for(lambda: _all_delivered(db), timeout=60, message="storm delivered")
    requests = receiver.requests("/storm")
    assert len(requests) < 30
    times = [r.received_monotonic for r in requests]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    digests = [r.json() for r in requests if "health alerts" in r.json()["text"]]
    assert digests, "at least one digest message"
    for message in (r.json() for r in requests):
        blocks = Block.parse_all(message["blocks"])
        for block in blocks:
            block.validate_json()
        assert len(blocks) <= 50


async def test_private_webhook_refused_without_the_flag(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, [{"name": "s", "type": "slack", "url": receiver.url("/x")}])
    settings = make_settings(
        kafka_bootstrap, database_url, topics, HEALTHSCORE_ALLOW_PRIVATE_WEBHOOKS=False
    )
    with pytest.raises(InvalidConfigError, match="scheme must be https"):
        async with running(settings, config):
            pass
    assert receiver.requests("/x") == []


async def test_time_sweep_raises_renewal_at_risk(
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    db: Any,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    from healthscore.clock import ManualClock

    config = make_config(
        tmp_path,
        [{"name": "s", "type": "slack", "url": receiver.url("/renewal")}],
        rules=[{"type": "renewal_at_risk", "within_days": 30}],
    )
    settings = make_settings(kafka_bootstrap, database_url, topics)
    clock = ManualClock(dt.datetime(2025, 11, 1, tzinfo=dt.UTC))
    async with running(settings, config) as service:
        service.clock = clock
        account = _acct()
        change = score_changed(account, "green", "amber", at=clock.now(), score=55)
        await publish(kafka_bootstrap, topics, change)
        await wait_for(lambda: _has_state(db, account), timeout=20, message="state stored")
        assert service.processor is not None
        assert await service.processor.sweep(clock.now(), None) == []
        clock.advance(dt.timedelta(days=2))  # renewal 2026-01-31 is now 89 days away... not yet
        assert await service.processor.sweep(clock.now(), None) == []
        clock.current = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        raised = await service.processor.sweep(clock.now(), None)
        assert [a.rule for a in raised] == ["renewal_at_risk"]
        await receiver.wait_for(lambda r: len(r) == 1, path="/renewal", within=20)
        assert await service.processor.sweep(clock.now() + dt.timedelta(days=1), None) == []


async def _has_state(db: Any, account: str) -> bool:
    async with db.connect() as conn:
        return bool(
            await conn.scalar(
                sa.text("SELECT count(*) FROM alert_rule_state WHERE account_id = :a"),
                {"a": account},
            )
        )
