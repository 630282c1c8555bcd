"""Property test: no body, valid, broken or hostile, makes POST /v1/events answer 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from healthscore.apikeys import MemoryKeyStore
from schemas.events import EVENT_TYPES, parse_event
from services.ingest.app import create_app
from services.ingest.intake import KafkaRecord
from services.ingest.settings import IngestSettings

EXAMPLES = {
    t: json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "examples" / f"{t}.json").read_text()
    )
    for t in EVENT_TYPES
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["event_id", "account_id", "type", "occurred_at", "source", "payload", "schema_version", "x"]
)
payload_names = st.sampled_from(
    ["metric", "quantity", "status", "priority", "score", "survey", "amount_cents", "currency",
     "renewal_date", "licenses", "text", "csat", "direction", "event", "y"]
)  # fmt: skip


@st.composite
def events(draw: st.DrawFn) -> Any:
    """An example event, sometimes left valid, sometimes with fields replaced or removed."""
    event = json.loads(json.dumps(EXAMPLES[draw(st.sampled_from(EVENT_TYPES))]))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        target = (
            event["payload"]
            if draw(st.booleans()) and isinstance(event.get("payload"), dict)
            else event
        )
        name = draw(payload_names if target is not event else field_names)
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(json_values)
    return event


items = st.one_of(events(), events(), json_values)
documents = st.one_of(events(), st.lists(items, min_size=0, max_size=30), json_values)


def _encode(document: Any) -> bytes:
    # json (not orjson) so integers beyond 64 bits and NaN/Infinity reach the server as sent.
    return json.dumps(document).encode()


bodies = st.one_of(
    documents.map(_encode),
    documents.map(_encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
    st.binary(max_size=200),
    documents.map(_encode).map(lambda b: b.replace(b'"', b"\xff", 1)),
)


class RecordingPublisher:
    """Keeps what it was asked to publish (a hand-written fake behind the publisher port)."""

    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []

    async def publish(self, records: Sequence[KafkaRecord]) -> None:
        self.records.extend(records)

    async def ready(self) -> bool:
        return True


class Fuzz:
    def __init__(self) -> None:
        self.publisher = RecordingPublisher()
        store = MemoryKeyStore()
        self.token = store.add("fuzzer", ["ingest"]).token
        settings = IngestSettings(rate_limit_per_second=1e9, rate_limit_burst=10**9)
        self.app = create_app(
            settings, registry=CollectorRegistry(), publisher=self.publisher, key_store=store
        )


@pytest_asyncio.fixture
async def fuzz() -> AsyncIterator[tuple[Fuzz, httpx.AsyncClient]]:
    harness = Fuzz()
    transport = httpx.ASGITransport(app=harness.app, raise_app_exceptions=True)
    async with (
        harness.app.router.lifespan_context(harness.app),
        httpx.AsyncClient(transport=transport, base_url="http://ingest") as client,
    ):
        yield harness, client


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
async def test_no_body_causes_a_server_error(
    fuzz: tuple[Fuzz, httpx.AsyncClient], body: bytes
) -> None:
    harness, client = fuzz
    before = len(harness.publisher.records)
    response = await client.post(
        "/v1/events", content=body, headers={"Authorization": f"Bearer {harness.token}"}
    )
    assert response.status_code in (202, 413, 422), (response.status_code, response.text)
    event(f"status {response.status_code}")
    answer = response.json()
    published = harness.publisher.records[before:]
    if response.status_code == 202:
        assert answer["accepted"] == len(published) >= 1
        assert answer["event_ids"] == [parse_event(r.value).event_id for r in published]
        indexes = [r["index"] for r in answer["rejected"]]
        assert len(indexes) == len(set(indexes))
    else:
        assert published == []
