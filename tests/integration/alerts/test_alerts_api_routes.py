"""The alert log routes read what the alerts service wrote (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from healthscore.apikeys import ApiKey
from services.alerts.config import default_rules
from services.alerts.rules import RuleState, evaluate
from services.alerts.store import (
    AttemptRecord,
    NewAlert,
    PostgresAlertStore,
    breakdown_of,
)
from services.api.auth import require_read
from services.api.routes_alerts import alerts_router
from tests.integration.alerts.conftest import score_changed

pytestmark = pytest.mark.integration
NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


async def test_alert_log_deliveries_attempts_and_dead_letters(db: Any) -> None:
    store = PostgresAlertStore(db)
    change = score_changed("acme", "amber", "red", at=NOW)
    (alert,) = evaluate(default_rules(), change, RuleState(), NOW).alerts
    await store.save([], [NewAlert(alert, breakdown_of(change), ("health.alerts", "crm"))], NOW)
    claimed = await store.claim("crm", NOW, 10, NOW + dt.timedelta(minutes=1))
    assert [c.alert_id for c in claimed] == [alert.alert_id]
    await store.record(
        [
            AttemptRecord(
                delivery_id=claimed[0].id,
                attempt=1,
                started_at=NOW,
                latency_seconds=0.02,
                status_code=410,
                error="gone",
                outcome="dead_lettered",
                next_attempt_at=None,
                dead_reason="permanent failure: HTTP 410 (gone)",
                finished_at=NOW,
            )
        ]
    )

    app = FastAPI()
    app.include_router(alerts_router(engine=lambda: db))
    app.dependency_overrides[require_read] = lambda: ApiKey("k", "test", frozenset({"read"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/v1/accounts/acme/alerts")
        assert response.status_code == 200, response.text
        page = response.json()
        listed = (
            await client.get("/v1/alerts", params={"delivery_status": "dead_lettered"})
        ).json()
        detail = (await client.get(f"/v1/alerts/{alert.alert_id}")).json()
        dead = (await client.get("/v1/alerts/dead-letters")).json()
        missing = await client.get("/v1/alerts/nope")
        none = (await client.get("/v1/accounts/other/alerts")).json()

    assert [a["alert_id"] for a in page["items"]] == [alert.alert_id]
    assert {d["destination"]: d["status"] for d in page["items"][0]["deliveries"]} == {
        "crm": "dead_lettered",
        "health.alerts": "pending",
    }
    assert [a["alert_id"] for a in listed["items"]] == [alert.alert_id]
    crm = next(d for d in detail["deliveries"] if d["destination"] == "crm")
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in crm["attempt_log"]] == [
        (1, 410, "dead_lettered")
    ]
    assert [(d["alert_id"], d["delivery"]["dead_reason"]) for d in dead["items"]] == [
        (alert.alert_id, "permanent failure: HTTP 410 (gone)")
    ]
    assert missing.status_code == 404
    assert none["items"] == []


async def test_paging_never_skips_alerts_raised_at_the_same_time(db: Any) -> None:
    # Every alert of one time sweep (and every rule fired by one record) shares raised_at.
    store = PostgresAlertStore(db)
    raised = []
    for account in ("a1", "a2", "a3", "a4", "a5"):
        change = score_changed(account, "amber", "red", at=NOW)
        (alert,) = evaluate(default_rules(), change, RuleState(), NOW).alerts
        raised.append(NewAlert(alert, breakdown_of(change), ("health.alerts",)))
    await store.save([], raised, NOW)

    app = FastAPI()
    app.include_router(alerts_router(engine=lambda: db))
    app.dependency_overrides[require_read] = lambda: ApiKey("k", "test", frozenset({"read"}))
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for _ in range(10):
            page = (await client.get("/v1/alerts", params=params)).json()
            seen += [a["alert_id"] for a in page["items"]]
            if page["next_before"] is None:
                break
            params = {
                "limit": 2,
                "before": page["next_before"],
                "before_id": page["next_before_id"],
            }
    assert sorted(seen) == sorted(n.alert.alert_id for n in raised)
    assert len(seen) == len(set(seen))
