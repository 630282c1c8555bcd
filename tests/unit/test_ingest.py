"""Ingest HTTP contract, in process: our own fakes behind the publisher port, no network."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from healthscore.apikeys import MemoryKeyStore
from healthscore.clock import ManualClock
from schemas.events import EVENT_TYPES, parse_event
from services.ingest.app import create_app
from services.ingest.intake import KafkaRecord
from services.ingest.publisher import PublishUnavailableError
from services.ingest.settings import IngestSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
BOOTSTRAP = "bootstrap-secret-for-unit-tests"


def example(event_type: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{event_type}.json").read_text())
    data.update(changes)
    return data


class RecordingPublisher:
    """Keeps what it was asked to publish; ``fail`` makes it behave like an unreachable broker."""

    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []
        self.fail = False
        self.is_ready = True

    async def publish(self, records: Sequence[KafkaRecord]) -> None:
        if self.fail:
            raise PublishUnavailableError("broker down (test)")
        self.records.extend(records)

    async def ready(self) -> bool:
        return self.is_ready


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, clock: ManualClock | None = None, **overrides: Any) -> None:
        self.settings = IngestSettings(topic_prefix="unit.", **overrides)
        self.publisher = RecordingPublisher()
        self.store = MemoryKeyStore(bootstrap_token=BOOTSTRAP)
        self.ingest_key = self.store.add("crm-sync", ["ingest"]).token
        self.admin_key = self.store.add("admin-only", ["admin"]).token
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.app = create_app(
            self.settings,
            registry=self.registry,
            publisher=self.publisher,
            key_store=self.store,
            monotonic=self.clock,
            clock=clock,
        )

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.ingest_key}"}

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
def harness() -> Harness:
    return Harness()


@asynccontextmanager
async def running(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client that calls it in process."""
    transport = httpx.ASGITransport(app=harness.app)
    async with (
        harness.app.router.lifespan_context(harness.app),
        httpx.AsyncClient(transport=transport, base_url="http://ingest") as test_client,
    ):
        yield test_client


@pytest_asyncio.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    async with running(harness) as test_client:
        yield test_client


async def post(
    client: httpx.AsyncClient, harness: Harness, body: Any, token: str | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(
        "/v1/events",
        content=content,
        headers={**harness.auth(token), "Content-Type": "application/json"},
    )


async def test_single_event_is_published_keyed_by_account(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    response = await post(client, harness, example("usage", source=None))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "event_ids": ["evt_01HZX3K9U1"], "rejected": []}
    [record] = harness.publisher.records
    assert record.topic == "unit.events.usage"
    assert record.key == b"acme-corp"
    event = parse_event(record.value)
    assert event.source == "crm-sync"  # defaulted to the key's name
    assert orjson.loads(record.value)["schema_version"] == 1


async def test_batch_of_every_type_goes_to_each_types_topic(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    batch = [example(t) for t in EVENT_TYPES]
    response = await post(client, harness, batch)
    assert response.status_code == 202
    assert response.json()["accepted"] == len(EVENT_TYPES)
    assert [r.topic for r in harness.publisher.records] == [f"unit.events.{t}" for t in EVENT_TYPES]
    # A source given by the client is kept.
    assert parse_event(harness.publisher.records[2].value).source == "stripe"
    assert harness.metric("healthscore_ingest_events_accepted_total", type="ticket") == 1


async def test_mixed_batch_lists_each_invalid_item(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    bad_score = example("feedback", event_id="bad-1")
    bad_score["payload"] = {"survey": "nps", "score": 42}
    batch = [
        example("usage"),
        bad_score,
        example("ticket", extra_field=1, event_id="bad-2"),
        "not an object",
        {"type": "nope", "event_id": "bad-4"},
        example("billing"),
    ]
    response = await post(client, harness, batch)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert body["event_ids"] == ["evt_01HZX3K9U1", "stripe:evt_1PDv3x"]
    rejected = {item["index"]: item for item in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4]
    assert rejected[1]["event_id"] == "bad-1"
    assert rejected[1]["errors"] == [
        {"field": "payload.score", "message": "nps scores run from 0 to 10", "type": "value_error"}
    ]
    assert rejected[2]["errors"][0]["field"] == "extra_field"
    assert rejected[2]["errors"][0]["type"] == "extra_forbidden"
    assert rejected[3]["event_id"] is None
    assert rejected[4]["errors"][0]["field"] == "type"
    assert len(harness.publisher.records) == 2
    assert harness.metric("healthscore_ingest_events_rejected_total", reason="validation") == 4


async def test_nothing_valid_is_422_and_nothing_published(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    response = await post(client, harness, [example("usage", account_id="has spaces")])
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert body["rejected"][0]["errors"][0]["field"] == "account_id"
    assert harness.publisher.records == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b'{"event_id": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b"[" * 5000 + b"]" * 5000,  # nesting deeper than any parser's limit
        b'{"a":' * 300 + b"1" + b"}" * 300,
        b"123",
        b'"a string"',
        b"null",
        b"[]",
        b"",
        orjson.dumps({**example("usage"), "payload": {"metric": "m", "quantity": 10**18}}),
        b'{"event_id": 1e999999}',
        b'[{"event_id": 123456789012345678901234567890}]',
        orjson.dumps([example("usage", occurred_at=10**15)]),
        orjson.dumps([[[]]]),
    ],
)
async def test_bad_input_is_422_never_500(
    client: httpx.AsyncClient, harness: Harness, body: bytes
) -> None:
    response = await post(client, harness, body)
    assert response.status_code == 422, response.text
    assert response.json()["accepted"] == 0
    assert harness.publisher.records == []


async def test_missing_or_wrong_key_is_401(client: httpx.AsyncClient, harness: Harness) -> None:
    body = orjson.dumps(example("usage"))
    assert (await client.post("/v1/events", content=body)).status_code == 401
    wrong = harness.ingest_key[:-4] + "AAAA"
    response = await client.post("/v1/events", content=body, headers=harness.auth(wrong))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    not_ours = await client.post("/v1/events", content=body, headers=harness.auth("hs_zz_short"))
    assert not_ours.status_code == 401
    two_keys = {**harness.auth(), "X-API-Key": BOOTSTRAP}
    assert (await client.post("/v1/events", content=body, headers=two_keys)).status_code == 401
    assert harness.publisher.records == []


async def test_either_header_or_the_bootstrap_key_authenticates(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    body = orjson.dumps(example("usage"))
    assert (
        await client.post("/v1/events", content=body, headers={"X-API-Key": harness.ingest_key})
    ).status_code == 202
    both = {**harness.auth(), "X-API-Key": harness.ingest_key}
    assert (await client.post("/v1/events", content=body, headers=both)).status_code == 202
    response = await client.post("/v1/events", content=body, headers=harness.auth(BOOTSTRAP))
    assert response.status_code == 202


async def test_key_without_ingest_scope_is_403(client: httpx.AsyncClient, harness: Harness) -> None:
    response = await post(client, harness, example("usage"), token=harness.admin_key)
    assert response.status_code == 403
    assert harness.publisher.records == []


async def test_body_above_limit_is_413_before_parsing() -> None:
    harness = Harness(max_body_bytes=2048)
    async with running(harness) as client:
        big = b"[" + b" " * 4096 + b"]"
        assert (await post(client, harness, big)).status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: checked while streaming
            for _ in range(10):
                yield b" " * 1000

        response = await client.post("/v1/events", content=chunks(), headers=harness.auth())
        assert response.status_code == 413
        assert (await post(client, harness, example("usage"))).status_code == 202


async def test_batch_above_item_limit_is_413() -> None:
    harness = Harness(max_batch_items=3, rate_limit_burst=10)
    async with running(harness) as client:
        response = await post(client, harness, [example("usage")] * 4)
        assert response.status_code == 413
        assert "at most 3" in response.json()["detail"]
        assert harness.publisher.records == []


async def test_rate_limit_answers_429_with_retry_after() -> None:
    harness = Harness(max_batch_items=5, rate_limit_burst=5, rate_limit_per_second=2)
    async with running(harness) as client:
        assert (await post(client, harness, [example("usage")] * 5)).status_code == 202
        limited = await post(client, harness, [example("usage")] * 3)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"  # 3 tokens at 2/s
        # Another key has its own bucket.
        assert (await post(client, harness, example("usage"), token=BOOTSTRAP)).status_code == 202
        harness.clock.now += 1.5
        assert (await post(client, harness, [example("usage")] * 3)).status_code == 202
        assert (
            harness.metric("healthscore_ingest_events_rejected_total", reason="rate_limited") == 3
        )


async def test_broker_unavailable_is_503_with_retry_after(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    harness.publisher.fail = True
    response = await post(client, harness, [example("usage"), example("ticket")])
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert harness.metric("healthscore_ingest_events_rejected_total", reason="unavailable") == 2
    harness.publisher.fail = False
    assert (await post(client, harness, example("usage"))).status_code == 202


async def test_health_readiness_and_metrics(client: httpx.AsyncClient, harness: Harness) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    harness.publisher.is_ready = False
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"kafka": False, "api_keys": True}
    await post(client, harness, example("usage"))
    await client.get("/nowhere")
    text = (await client.get("/metrics")).text
    assert 'healthscore_ingest_requests_total{code="202",route="/v1/events"} 1.0' in text
    assert 'healthscore_ingest_requests_total{code="404",route="other"} 1.0' in text
    assert "healthscore_ingest_publish_latency_seconds_count 1.0" in text
    assert 'healthscore_ingest_events_accepted_total{type="usage"} 1.0' in text


async def test_openapi_documents_the_contract(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/events"]["post"]
    assert {"202", "401", "403", "413", "422", "429", "503"} <= set(operation["responses"])
    assert operation["description"].startswith("Publish one event or a batch")
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == {"$ref": "#/components/schemas/Event"}
    components = spec["components"]
    assert "UsagePayload" in components["schemas"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(components["securitySchemes"])


async def test_request_does_not_mutate_shared_examples(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    body = [example("usage")]
    before = copy.deepcopy(body)
    await post(client, harness, body)
    assert body == before


async def test_event_time_far_in_the_future_is_refused_per_item() -> None:
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    harness = Harness(clock=ManualClock(now), max_future_seconds=3600)
    skewed = example("usage", event_id="skewed", occurred_at="2026-06-01T12:59:00Z")
    future = example("usage", event_id="future", occurred_at="2026-06-01T13:01:00+00:00")
    broken = example("usage", event_id="broken", occurred_at="2030-01-01T00:00:00Z", extra=1)
    async with running(harness) as client:
        response = await post(client, harness, [skewed, future, broken])
    assert response.status_code == 202
    body = response.json()
    assert body["event_ids"] == ["skewed"]
    rejected = {item["index"]: item["errors"] for item in body["rejected"]}
    assert rejected[1] == [
        {
            "field": "occurred_at",
            "message": "is in the future (later than 2026-06-01T13:00:00+00:00, "
            "allowing for clock skew)",
            "type": "future_event_time",
        }
    ]
    assert [e["type"] for e in rejected[2]] == ["extra_forbidden"]  # reported once, not twice
    assert len(harness.publisher.records) == 1


async def test_future_event_time_in_any_rfc3339_form_is_reported_not_dropped() -> None:
    # Lower-case "t"/"z" are valid RFC 3339 that datetime.fromisoformat refuses: such an item
    # must still be listed as rejected, never vanish from both accepted and rejected.
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    harness = Harness(clock=ManualClock(now), max_future_seconds=3600)
    ok = example("usage", event_id="ok", occurred_at="2026-06-01t11:00:00z")
    future = example("usage", event_id="future", occurred_at="2026-06-01t13:01:00z")
    async with running(harness) as client:
        response = await post(client, harness, [ok, future])
        alone = await post(client, harness, future)
    assert response.status_code == 202
    body = response.json()
    assert body["event_ids"] == ["ok"]
    assert [(r["index"], r["event_id"]) for r in body["rejected"]] == [(1, "future")]
    assert body["rejected"][0]["errors"][0]["type"] == "future_event_time"
    assert alone.status_code == 422
    assert [r["event_id"] for r in alone.json()["rejected"]] == ["future"]
    assert len(harness.publisher.records) == 1
