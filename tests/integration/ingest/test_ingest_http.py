"""Ingest over real HTTP, against the real broker and database."""

from __future__ import annotations

import collections

import orjson
import pytest

from healthscore.topics import Topics
from schemas.events import parse_event
from tests.integration.ingest.harness import (
    Keys,
    bearer,
    example,
    ingest_settings,
    serve_ingest,
    unique_events,
)
from tests.support import at_least, consume

pytestmark = pytest.mark.integration


async def test_batch_arrives_on_each_types_topic_keyed_by_account_exactly_once(
    kafka_bootstrap: str, database_url: str, topics: Topics, keys: Keys
) -> None:
    batch = unique_events(120)
    settings = ingest_settings(kafka_bootstrap, database_url, topics)
    async with serve_ingest(settings) as ingest:
        response = await ingest.client.post("/v1/events", json=batch, headers=bearer(keys.ingest))
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 120
        single = await ingest.client.post(
            "/v1/events", json=example("usage", event_id="single-1"), headers=bearer(keys.ingest)
        )
        assert single.status_code == 202
        ready = await ingest.client.get("/readyz")
        assert ready.json() == {"kafka": True, "api_keys": True}

    sent_by_id = {e["event_id"]: e for e in batch}
    records = await consume(kafka_bootstrap, list(topics.events), until=at_least(121))
    assert len(records) == 121
    by_id = collections.Counter(parse_event(r.value).event_id for r in records)
    assert max(by_id.values()) == 1  # exactly once
    assert set(by_id) == {e["event_id"] for e in batch} | {"single-1"}
    for record in records:
        event = parse_event(record.value)
        assert record.topic == topics.event(event.type)
        assert record.key == event.account_id.encode()
        # The record is the event as sent, plus the key's source where the client gave none.
        sent = sent_by_id.get(event.event_id, example("usage", event_id="single-1"))
        assert event.source == (sent.get("source") or "crm")
        assert event == parse_event(orjson.dumps({**sent, "source": event.source}))


async def test_mixed_batch_gets_per_item_errors_and_publishes_the_rest(
    kafka_bootstrap: str, database_url: str, topics: Topics, keys: Keys
) -> None:
    good = unique_events(3)
    bad = example("feedback", event_id="bad-score")
    bad["payload"] = {"survey": "ces", "score": 9}
    async with serve_ingest(ingest_settings(kafka_bootstrap, database_url, topics)) as ingest:
        response = await ingest.client.post(
            "/v1/events", json=[good[0], bad, good[1], {"nope": 1}, good[2]],
            headers=bearer(keys.ingest),
        )  # fmt: skip
        assert response.status_code == 202
        body = response.json()
        assert body["accepted"] == 3
        assert [r["index"] for r in body["rejected"]] == [1, 3]
        assert body["rejected"][0]["errors"][0]["field"] == "payload.score"
        none_valid = await ingest.client.post("/v1/events", json=[bad], headers=bearer(keys.ingest))
        assert none_valid.status_code == 422
    records = await consume(kafka_bootstrap, list(topics.events), until=at_least(3))
    assert sorted(parse_event(r.value).event_id for r in records) == sorted(
        e["event_id"] for e in good
    )


async def test_auth_size_and_rate_limit_answers(
    kafka_bootstrap: str, database_url: str, topics: Topics, keys: Keys
) -> None:
    settings = ingest_settings(
        kafka_bootstrap,
        database_url,
        topics,
        max_body_bytes=64 * 1024,
        max_batch_items=50,
        rate_limit_burst=60,
        rate_limit_per_second=1,
        key_miss_refresh_seconds=0,
    )
    body = orjson.dumps(unique_events(1))
    async with serve_ingest(settings) as ingest:
        client = ingest.client
        assert (await client.post("/v1/events", content=body)).status_code == 401
        wrong = keys.ingest[:-6] + "abcdef"
        assert (
            await client.post("/v1/events", content=body, headers=bearer(wrong))
        ).status_code == 401
        forbidden = await client.post("/v1/events", content=body, headers=bearer(keys.admin_only))
        assert forbidden.status_code == 403
        too_big = await client.post(
            "/v1/events", content=b"[" + b" " * (64 * 1024) + b"]", headers=bearer(keys.ingest)
        )
        assert too_big.status_code == 413
        too_many = await client.post(
            "/v1/events", json=unique_events(51), headers=bearer(keys.ingest)
        )
        assert too_many.status_code == 413

        # A key created while ingest runs works at once (an unknown key triggers a reload).
        late = await keys.repo.create("late-source", ["ingest"])
        ok = await client.post("/v1/events", json=unique_events(50), headers=bearer(late.token))
        assert ok.status_code == 202
        limited = await client.post(
            "/v1/events", json=unique_events(20), headers=bearer(late.token)
        )
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        # Other keys have their own budget.
        other = await client.post("/v1/events", content=body, headers=bearer(keys.ingest))
        assert other.status_code == 202

        # Revoked keys stop working at the next reload.
        await keys.repo.revoke("late-source")
        assert await ingest.app.state.key_store.reload()
        revoked = await client.post("/v1/events", content=body, headers=bearer(late.token))
        assert revoked.status_code == 401

        metrics = (await client.get("/metrics")).text
        assert 'healthscore_ingest_requests_total{code="401",route="/v1/events"} 3.0' in metrics
        assert 'healthscore_ingest_events_rejected_total{reason="rate_limited"} 20.0' in metrics
