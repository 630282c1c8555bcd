"""The scorer end to end against the real broker and database: events posted through ingest are
scored into health.scores, health.status and PostgreSQL; a quiet account decays by time alone
(ManualClock, no sleeping); a published model version rescores accounts; poison records go to
the DLQ while the next good record is still scored."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from healthscore.clock import ManualClock
from healthscore.engine import AccountState, PublishedModel, default_models, parse_model
from healthscore.topics import Topics
from schemas.messages import DLQ_HEADERS, ModelPublished, ScoreChanged
from tests.integration.scorer.conftest import (
    account_rows,
    all_processed,
    history_rows,
    latest_by_key,
    post_events,
    replay,
    running_scorer,
    scorer_settings,
    serve_ingest,
)
from tests.support.kafka import Record, consume, produce

pytestmark = pytest.mark.integration

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def _event(
    run: str, n: int, account: str, kind: str, at: dt.datetime, **payload: Any
) -> dict[str, Any]:
    return {
        "event_id": f"{run}-{account}-{n}",
        "account_id": account,
        "type": kind,
        "occurred_at": at.isoformat(),
        "payload": payload,
    }


def healthy_account(account: str, run: str) -> list[dict[str, Any]]:
    """Every seat active this week, paid, talked to, happy: green under the adoption model."""
    day = dt.timedelta(days=1)
    events = [
        _event(
            run,
            0,
            account,
            "account",
            NOW - 60 * day,
            name="Acme",
            lifecycle_stage="adoption",
            segment="smb",
            licenses=5,
            owner="csm@example.com",
            renewal_date="2024-12-31",
        ),
        _event(
            run,
            1,
            account,
            "billing",
            NOW - 10 * day,
            invoice_id="inv-1",
            status="paid",
            amount_cents=100_000,
            currency="EUR",
        ),
        _event(
            run,
            2,
            account,
            "email",
            NOW - 2 * day,
            message_id="m-1",
            direction="outbound",
            event="sent",
        ),
        _event(
            run,
            3,
            account,
            "email",
            NOW - 1 * day,
            message_id="m-2",
            direction="inbound",
            event="replied",
            text="Thanks, this is great",
        ),
        _event(
            run,
            4,
            account,
            "email",
            NOW - 3 * day,
            message_id="m-3",
            direction="inbound",
            event="replied",
        ),
        _event(
            run, 5, account, "feedback", NOW - 5 * day, survey="nps", score=10, comment="We love it"
        ),
    ]
    n = 10
    for user in range(5):
        for back in (1, 2, 4, 33, 35):
            events.append(
                _event(
                    run,
                    n,
                    account,
                    "usage",
                    NOW - back * day,
                    metric="login",
                    user_id=f"u{user}",
                    feature=f"f{(user + back) % 6}",
                )
            )
            n += 1
    return events


def quiet_account(account: str, run: str) -> list[dict[str, Any]]:
    return [
        _event(run, 0, account, "usage", NOW - dt.timedelta(days=20), metric="login", user_id="u1")
    ]


def statuses_match(expected: dict[str, float]) -> Any:
    def check(records: list[Record]) -> bool:
        latest = latest_by_key(records)
        return all(
            account in latest and latest[account]["new_score"] == value
            for account, value in expected.items()
        )

    return check


async def test_events_through_ingest_are_scored_to_kafka_and_postgres(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    events = healthy_account("acct-green", run) + quiet_account("acct-quiet", run)
    clock = ManualClock(NOW)
    expected = replay(events, NOW)
    assert expected["acct-green"][1].status == "green"
    settings = scorer_settings(kafka_bootstrap, database_url, topics, tmp_path)
    async with (
        running_scorer(settings, clock) as scorer,
        serve_ingest(kafka_bootstrap, database_url, topics) as client,
    ):
        await post_events(client, events)
        await all_processed(scorer, len(events))
        want = {account: card.score for account, (_, card) in expected.items()}
        status = latest_by_key(
            await consume(kafka_bootstrap, topics.status, until=statuses_match(want), timeout=60)
        )
        changes = await consume(
            kafka_bootstrap,
            topics.scores,
            until=statuses_match(want),
            timeout=30,
        )
        await scorer.writer.drained()
        rows = await account_rows(database_url)

    for account, (state, card) in expected.items():
        latest = ScoreChanged.model_validate(status[account])
        assert (latest.new_score, latest.new_status) == (card.score, card.status)
        assert (latest.model_id, latest.model_version) == (card.model_id, 0)
        assert latest.cause == "event"
        assert latest.event_time is not None
        assert latest.scored_at == NOW
        assert [c.name for c in latest.categories] == [c.name for c in card.categories]
        assert len(latest.indicators) == len(card.indicators)
        # Every change names its predecessor: the records chain from None to the final score.
        mine = [
            ScoreChanged.model_validate_json(r.value)
            for r in changes
            if r.key == account.encode() and r.value is not None
        ]
        assert mine[0].old_score is None
        assert all(b.old_score == a.new_score for a, b in itertools.pairwise(mine))
        assert mine[-1].new_score == card.score
        row = rows[account]
        assert (row["score"], row["status"]) == (card.score, card.status)
        assert row["model_id"] == card.model_id
        assert row["model_version"] == 0
        assert AccountState.from_bytes(row["state"]) == state
        assert row["scored_at"] == NOW
    assert rows["acct-green"]["lifecycle_stage"] == "adoption"
    assert rows["acct-green"]["renewal_date"] == dt.date(2024, 12, 31)
    assert rows["acct-green"]["owner"] == "csm@example.com"
    history = await history_rows(database_url, "acct-green")
    # A fixed clock gives every change the same scored_at; the history is unique on (account,
    # scored_at, model version), so it keeps the first change of that instant.
    first = ScoreChanged.model_validate_json(
        next(r.value for r in changes if r.key == b"acct-green" and r.value is not None)
    )
    assert [h["score"] for h in history] == [first.new_score]
    assert history[0]["cause"] == "event"
    assert history[0]["categories"]


async def test_a_quiet_account_decays_across_a_band_by_time_alone(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    events = healthy_account("acct-green", run)
    clock = ManualClock(NOW)
    settings = scorer_settings(kafka_bootstrap, database_url, topics, tmp_path)
    later = NOW + dt.timedelta(days=40)
    before = replay(events, NOW)["acct-green"][1]
    after = replay(events, later)["acct-green"][1]
    assert before.status == "green"
    assert after.status != "green"
    async with (
        running_scorer(settings, clock) as scorer,
        serve_ingest(kafka_bootstrap, database_url, topics) as client,
    ):
        await post_events(client, events)
        await all_processed(scorer, len(events))
        clock.advance(later - NOW)  # no event from here on: only time passes
        records = await consume(
            kafka_bootstrap,
            topics.scores,
            until=lambda rs: any(orjson.loads(r.value or b"{}")["cause"] == "time" for r in rs),
            timeout=60,
        )
        await all_processed(scorer, len(events) + 1)  # the events and one tick
        rows = await account_rows(database_url)
    decayed = [
        ScoreChanged.model_validate_json(r.value)
        for r in records
        if r.value is not None and orjson.loads(r.value)["cause"] == "time"
    ]
    assert len(decayed) == 1
    change = decayed[0]
    assert (change.old_status, change.new_status) == ("green", after.status)
    assert change.new_score == after.score
    assert change.scored_at == later
    assert change.event_time is None
    assert change.drivers
    assert rows["acct-green"]["status"] == after.status
    assert rows["acct-green"]["cause"] == "time"


def _adoption_document() -> dict[str, Any]:
    text = (resources.files("healthscore.engine") / "default_models" / "adoption.yaml").read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


async def test_a_published_model_version_rescores_accounts(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    events = healthy_account("acct-green", run) + quiet_account("acct-quiet", run)
    clock = ManualClock(NOW)
    settings = scorer_settings(kafka_bootstrap, database_url, topics, tmp_path)
    document = _adoption_document()
    # A stricter model: green needs 95, and a login today.
    login = document["categories"][0]["indicators"][3]
    assert login["name"] == "Days since last login"
    login["good"], login["average"] = 0, 0.5
    document["bands"] = [
        {"status": "red", "min": 0, "max": 40},
        {"status": "amber", "min": 40, "max": 95},
        {"status": "green", "min": 95, "max": 100},
    ]
    v1 = PublishedModel("adoption", 1, parse_model(document))
    models = [v1, *(m for m in default_models() if m.model_id != "adoption")]
    expected = replay(events, NOW, models)
    assert replay(events, NOW)["acct-green"][1].status == "green"
    assert expected["acct-green"][1].status == "amber"
    async with (
        running_scorer(settings, clock) as scorer,
        serve_ingest(kafka_bootstrap, database_url, topics) as client,
    ):
        await post_events(client, events)
        await all_processed(scorer, len(events))
        published = ModelPublished(
            model_id="adoption", version=1, document=document, published_at=NOW
        )
        await produce(kafka_bootstrap, topics.models, [("adoption", published.model_dump_json())])
        records = await consume(
            kafka_bootstrap,
            topics.status,
            until=lambda rs: all(
                latest_by_key(rs).get(a, {}).get("model_version") == 1 for a in expected
            ),
            timeout=60,
        )
        await all_processed(scorer, len(events) + len(expected))  # one tick per account
        rows = await account_rows(database_url)
    latest = latest_by_key(records)
    for account, (_, card) in expected.items():
        change = ScoreChanged.model_validate(latest[account])
        assert change.cause == "model"
        assert change.model_version == 1
        assert (change.new_score, change.new_status) == (card.score, card.status)
        assert rows[account]["model_version"] == 1
    assert ScoreChanged.model_validate(latest["acct-green"]).new_status == "amber"


async def test_poison_records_go_to_the_dlq_and_the_next_good_record_is_scored(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    good = _event(run, 1, "acct-p", "usage", NOW, metric="login", user_id="u1")
    invalid = _event(run, 2, "acct-p", "usage", NOW, metric="login", quantity=-5)
    clock = ManualClock(NOW)
    settings = scorer_settings(kafka_bootstrap, database_url, topics, tmp_path)
    async with running_scorer(settings, clock):
        await produce(
            kafka_bootstrap,
            topics.event("usage"),
            [
                ("acct-p", b"\xff{not json"),
                ("acct-p", orjson.dumps(invalid)),
                ("acct-p", orjson.dumps(good)),
            ],
        )
        dlq = await consume(kafka_bootstrap, topics.dlq, until=lambda rs: len(rs) >= 2)
        scores = await consume(kafka_bootstrap, topics.scores, until=lambda rs: len(rs) >= 1)
    reasons = []
    for record in dlq:
        headers = {name: value.decode() for name, value in record.headers}
        reasons.append(headers[DLQ_HEADERS["reason"]])
        assert headers[DLQ_HEADERS["topic"]] == topics.event("usage")
        assert int(headers[DLQ_HEADERS["offset"]]) >= 0
        assert record.key == b"acct-p"
    assert reasons == ["decode_error", "validation_error"]
    assert "payload.quantity" in dict(dlq[1].headers)[DLQ_HEADERS["detail"]].decode()
    assert dlq[0].value == b"\xff{not json"
    change = ScoreChanged.model_validate_json(scores[0].value or b"")
    assert change.account_id == "acct-p"
    assert change.event_time == NOW
