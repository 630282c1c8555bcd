"""The whole path read back through the api: events posted to ingest, scored by a real scorer
worker, listed and detailed by the api; then a model published through the api rescores the
accounts (scorer, ingest and api in this process; real Kafka and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from healthscore.clock import ManualClock
from healthscore.engine import PublishedModel, default_models, parse_model
from healthscore.topics import Topics
from tests.integration.api.testkit import ADMIN, NOW, api_settings, running_api
from tests.integration.scorer.conftest import (
    post_events,
    replay,
    running_scorer,
    scorer_settings,
    serve_ingest,
)
from tests.support import wait_for

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json", **ADMIN}


def account_events(run: str, account: str, users: int, segment: str) -> list[dict[str, Any]]:
    def event(n: int, kind: str, at: dt.datetime, **payload: Any) -> dict[str, Any]:
        return {
            "event_id": f"{run}-{account}-{n}",
            "account_id": account,
            "type": kind,
            "occurred_at": at.isoformat(),
            "payload": payload,
        }

    profile = event(
        0,
        "account",
        NOW - dt.timedelta(days=60),
        name=account.title(),
        lifecycle_stage="adoption",
        segment=segment,
        licenses=10,
        owner="ana",
        renewal_date="2026-06-30",
    )
    logins = [
        event(1 + i, "usage", NOW - dt.timedelta(days=1 + i % 5), metric="login", user_id=f"u{i}")
        for i in range(users)
    ]
    return [profile, *logins]


def strict_model() -> dict[str, Any]:
    """Green needs 9 of 10 seats active: the busy account stays green, the half-used one drops."""
    return {
        "id": "smb-strict",
        "name": "SMB, strict",
        "applies_to": {"segments": ["smb"]},
        "priority": 50,
        "categories": [
            {
                "name": "Seats",
                "weight": 1,
                "indicators": [
                    {
                        "name": "Active users",
                        "metric": {
                            "kind": "distinct",
                            "event": "usage",
                            "field": "user_id",
                            "window": "30d",
                        },
                        "max_points": 10,
                        "good": 9,
                        "average": 2,
                    }
                ],
            }
        ],
    }


async def test_ingest_scorer_api_and_a_published_model(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    events = (
        account_events(run, "busy", 10, "smb")
        + account_events(run, "half", 5, "smb")
        + account_events(run, "big", 10, "enterprise")
    )
    expected = replay(events, NOW)
    clock = ManualClock(NOW)
    settings = scorer_settings(kafka_bootstrap, database_url, topics, tmp_path)
    async with (
        running_scorer(settings, clock) as scorer,
        serve_ingest(kafka_bootstrap, database_url, topics) as ingest,
        running_api(api_settings(database_url, kafka_bootstrap, topics)) as api,
    ):
        await post_events(ingest, events)

        async def listed() -> dict[str, dict[str, Any]] | None:
            await scorer.writer.drained()
            page = (await api.client.get("/v1/accounts?sort=account_id", headers=ADMIN)).json()
            rows = {a["account_id"]: a for a in page["items"]}
            want = {a: c.score for a, (_, c) in expected.items()}
            return rows if {a: r["score"] for a, r in rows.items()} == want else None

        rows = await wait_for(listed, timeout=60, message="scored accounts listed by the api")
        for account, (_, card) in expected.items():
            assert (rows[account]["status"], rows[account]["model_id"]) == (card.status, "adoption")
        detail = (await api.client.get("/v1/accounts/half", headers=ADMIN)).json()
        assert [c["name"] for c in detail["categories"]] == [
            c.name for c in expected["half"][1].categories
        ]
        assert detail["history"]["items"][0]["score"] == expected["half"][1].score

        # Draft → preview → publish through the api; the scorer rescores with the new version.
        body = orjson.dumps(strict_model())
        assert (await api.client.post("/v1/models", content=body, headers=JSON)).status_code == 201
        preview = (
            await api.client.post("/v1/models/smb-strict/draft/preview", headers=ADMIN)
        ).json()
        strict = PublishedModel("smb-strict", 1, parse_model(strict_model()))
        after = replay(events, NOW, [strict, *[m for m in default_models() if m.model.default]])
        predicted = {
            a: (expected[a][1].status, after[a][1].status)
            for a in ("busy", "half")
            if expected[a][1].status != after[a][1].status
        }
        assert {
            c["account_id"]: (c["old_status"], c["new_status"]) for c in preview["changes"]
        } == predicted
        assert preview["accounts_affected"] == 2
        published = await api.client.post("/v1/models/smb-strict/draft/publish", headers=ADMIN)
        assert published.status_code == 201, published.text

        async def rescored() -> dict[str, Any] | None:
            await scorer.writer.drained()
            half = (await api.client.get("/v1/accounts/half", headers=ADMIN)).json()
            return half if half["model_id"] == "smb-strict" else None

        half = await wait_for(rescored, timeout=60, message="account rescored by the new model")
        assert (half["model_version"], half["score"], half["status"]) == (
            1,
            after["half"][1].score,
            after["half"][1].status,
        )
        history = (await api.client.get("/v1/accounts/half/history", headers=ADMIN)).json()
        assert history["items"][0]["cause"] == "model"
        big = (await api.client.get("/v1/accounts/big", headers=ADMIN)).json()
        assert big["model_id"] == "adoption"  # enterprise accounts keep the default model
