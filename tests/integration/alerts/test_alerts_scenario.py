"""From events to Slack: an account's usage stops, time passes, it turns red, and exactly one red
alert reaches the Slack receiver naming the drivers of that change.

Real ingest (HTTP), real scorer (faust, ManualClock), real alerts service, real broker and
database, a real local HTTP receiver as Slack.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from healthscore.clock import ManualClock
from healthscore.topics import Topics
from healthscore.webhook_receiver import WebhookReceiver
from schemas.messages import ScoreChanged
from tests.integration.alerts.conftest import make_config, make_settings, running
from tests.integration.scorer.conftest import (
    post_events,
    replay,
    running_scorer,
    scorer_settings,
    serve_ingest,
)
from tests.integration.scorer.test_scorer_pipeline import NOW, healthy_account, statuses_match
from tests.support import consume, wait_for

pytestmark = pytest.mark.integration


async def test_usage_stops_account_turns_red_one_slack_alert(
    kafka_bootstrap: str,
    database_url: str,
    topics: Topics,
    tmp_path: Path,
    receiver: WebhookReceiver,
    db: Any,
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    events = healthy_account(account, uuid.uuid4().hex[:8])
    before = replay(events, NOW)[account][1]
    assert before.status == "green"
    # The first day on which the pure engine says the quiet account is red.
    later = next(
        NOW + dt.timedelta(days=d)
        for d in range(1, 400)
        if replay(events, NOW + dt.timedelta(days=d))[account][1].status == "red"
    )
    clock = ManualClock(NOW)
    config = make_config(
        tmp_path,
        [{"name": "cs-slack", "type": "slack", "url": receiver.url("/slack")}],
        routes=[{"rules": ["red_alert"], "destinations": ["cs-slack"]}],
    )
    alerts_settings = make_settings(kafka_bootstrap, database_url, topics)
    async with (
        running_scorer(
            scorer_settings(kafka_bootstrap, database_url, topics, tmp_path), clock
        ) as scorer,
        serve_ingest(kafka_bootstrap, database_url, topics) as client,
        running(alerts_settings, config),
    ):
        await post_events(client, events)
        # Every event is applied (the scorer's per-account revision counts them) and scored
        # before time moves.
        await wait_for(
            lambda: _revision_at_least(db, account, len(events)), timeout=60, message="applied"
        )
        await consume(
            kafka_bootstrap,
            topics.status,
            until=statuses_match({account: before.score}),
            timeout=60,
        )
        clock.advance(later - NOW)  # usage has stopped: no events from here on, only time
        records = await consume(
            kafka_bootstrap,
            topics.scores,
            until=lambda rs: any(_red_by_time(r.value) for r in rs),
            timeout=60,
        )
        await scorer.writer.drained()
        slack = await receiver.wait_for(lambda r: len(r) >= 1, path="/slack", within=60)
        # Everything the alerts service read is settled before counting Slack messages.
        await wait_for(
            lambda: _evaluated_up_to(db, account, records[-1].offset),
            timeout=60,
            message="alerts evaluated the red record",
        )
        await wait_for(lambda: _settled(db), timeout=60, message="deliveries settled")
    changes = [ScoreChanged.model_validate_json(r.value or b"") for r in records]
    red = next(c for c in changes if c.new_status == "red" and c.cause == "time")
    assert red.old_status in ("green", "amber")
    assert len(receiver.requests("/slack")) == 1
    message = slack[0].json()
    assert "entered Red" in message["blocks"][0]["text"]["text"]
    drivers_text = message["blocks"][2]["text"]["text"]
    for driver in red.drivers[:3]:
        assert driver.indicator.replace("_", " ") in drivers_text


def _red_by_time(value: bytes | None) -> bool:
    data = orjson.loads(value or b"{}")
    return bool(data["new_status"] == "red" and data["cause"] == "time")


async def _revision_at_least(db: Any, account: str, count: int) -> bool:
    import sqlalchemy as sa

    async with db.connect() as conn:
        revision = await conn.scalar(
            sa.text("SELECT state_revision FROM account_scores WHERE account_id = :a"),
            {"a": account},
        )
    return revision is not None and revision >= count


async def _evaluated_up_to(db: Any, account: str, offset: int) -> bool:
    import sqlalchemy as sa

    async with db.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT source_offset FROM alert_rule_state WHERE account_id = :a"),
            {"a": account},
        )
    return stored is not None and stored >= offset


async def _settled(db: Any) -> bool:
    import sqlalchemy as sa

    async with db.connect() as conn:
        pending = await conn.scalar(
            sa.text("SELECT count(*) FROM alert_deliveries WHERE status = 'pending'")
        )
        total = await conn.scalar(sa.text("SELECT count(*) FROM alert_deliveries"))
    return bool(total) and pending == 0
