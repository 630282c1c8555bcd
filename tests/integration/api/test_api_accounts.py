"""Account reads through the api from the scorer's tables (seeded as the scorer writes them):
filters, sorts, keyset pagination, detail with breakdown and paged history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.api.testkit import ADMIN, Api, Seed, seed_accounts

pytestmark = pytest.mark.integration

SEEDS = [
    Seed("acme", 30, owner="ana", renewal_date=dt.date(2026, 4, 1), previous_score=90.0),
    Seed("bolt", 2, owner="ben", renewal_date=dt.date(2026, 3, 15), previous_score=80.0),
    Seed("cork", 4, owner="ana", segment="enterprise", previous_score=50.0),
    Seed("dune", 8, owner="cy", lifecycle_stage="onboarding", renewal_date=dt.date(2026, 9, 1)),
    Seed("echo", 30, owner="ben", segment="enterprise", renewal_date=dt.date(2026, 3, 20)),
    Seed("fern", 2, owner="cy", previous_score=20.0),
]


async def all_pages(api: Api, params: dict[str, Any], limit: int = 2) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(20):
        page = await api.client.get(
            "/v1/accounts",
            params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})},
            headers=ADMIN,
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


async def test_filters_sorts_and_pages(api: Api, db: AsyncEngine) -> None:
    await seed_accounts(db, SEEDS)
    everything = await all_pages(api, {"sort": "account_id"})
    assert [a["account_id"] for a in everything] == ["acme", "bolt", "cork", "dune", "echo", "fern"]
    by_id = {a["account_id"]: a for a in everything}

    # Sort by score ascending (at risk first), ties broken by account id; the same at any page size.
    by_score = await all_pages(api, {"sort": "score"})
    expected = sorted(everything, key=lambda a: (a["score"], a["account_id"]))
    assert [a["account_id"] for a in by_score] == [a["account_id"] for a in expected]
    assert by_score == await all_pages(api, {"sort": "score"}, limit=4)
    descending = await all_pages(api, {"sort": "-score"}, limit=3)
    assert [a["account_id"] for a in descending] == [
        a["account_id"] for a in sorted(everything, key=lambda a: (-a["score"], a["account_id"]))
    ]

    # Renewal soonest first; accounts without a renewal date last, in both directions.
    renewals = await all_pages(api, {"sort": "renewal_date"})
    assert [a["account_id"] for a in renewals] == ["bolt", "echo", "acme", "dune", "cork", "fern"]
    latest = await all_pages(api, {"sort": "-renewal_date"})
    assert [a["account_id"] for a in latest] == ["dune", "acme", "echo", "bolt", "cork", "fern"]

    # Score change: biggest drop first, never-changed accounts last.
    changes = await all_pages(api, {"sort": "score_change"})
    with_change = [a for a in changes if a["score_change"] is not None]
    assert [a["score_change"] for a in with_change] == sorted(
        a["score_change"] for a in with_change
    )
    assert {a["account_id"] for a in changes[len(with_change) :]} == {"dune", "echo"}
    assert by_id["acme"]["score_change"] == round(by_id["acme"]["score"] - 90.0, 1)

    # Filters, alone and combined (repeat a parameter for "any of").
    ana = await all_pages(api, {"owner": "ana"})
    assert {a["account_id"] for a in ana} == {"acme", "cork"}
    enterprise = await all_pages(api, {"segment": "enterprise", "sort": "account_id"})
    assert [a["account_id"] for a in enterprise] == ["cork", "echo"]
    onboarding = await all_pages(api, {"lifecycle_stage": "onboarding"})
    assert [a["account_id"] for a in onboarding] == ["dune"]
    statuses = {a["status"] for a in everything}
    for status in statuses:
        only = await all_pages(api, {"status": status})
        assert {a["account_id"] for a in only} == {
            a["account_id"] for a in everything if a["status"] == status
        }
    at_risk = await all_pages(
        api, {"status": ["red", "amber"], "owner": ["ben", "cy"], "sort": "renewal_date"}
    )
    assert [a["account_id"] for a in at_risk] == [
        a["account_id"]
        for a in renewals
        if a["status"] in ("red", "amber") and a["owner"] in ("ben", "cy")
    ]
    soon = await all_pages(api, {"renewal_before": "2026-03-31"})
    assert {a["account_id"] for a in soon} == {"bolt", "echo"}


async def test_bad_sort_and_cursor_are_client_errors(api: Api, db: AsyncEngine) -> None:
    await seed_accounts(db, SEEDS[:3])
    assert (await api.client.get("/v1/accounts?sort=name", headers=ADMIN)).status_code == 422
    bad = await api.client.get("/v1/accounts?cursor=not-a-cursor", headers=ADMIN)
    assert bad.status_code == 422
    page = (await api.client.get("/v1/accounts?limit=1&sort=score", headers=ADMIN)).json()
    other = await api.client.get(
        "/v1/accounts",
        params={"cursor": page["next_cursor"], "sort": "renewal_date"},
        headers=ADMIN,
    )
    assert other.status_code == 422  # a cursor only continues the listing that issued it


@pytest.mark.parametrize(
    "url",
    [
        "/v1/accounts/a%00b",
        "/v1/accounts/a%00b/history",
        "/v1/accounts?owner=a%00b",
        "/v1/alerts?account_id=a%00b",
        "/v1/alerts?rule=a%00b",
    ],
)
async def test_a_nul_character_in_a_filter_is_422_not_500(api: Api, url: str) -> None:
    answer = await api.client.get(url, headers=ADMIN)
    assert answer.status_code == 422, answer.text


async def test_account_detail_with_breakdown_and_paged_history(api: Api, db: AsyncEngine) -> None:
    states = await seed_accounts(db, SEEDS[:2], history=lambda seed: 7)
    answer = await api.client.get("/v1/accounts/acme?history_limit=3", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    acme = answer.json()
    assert (acme["account_id"], acme["name"], acme["owner"]) == ("acme", "ACME", "ana")
    assert acme["renewal_date"] == "2026-04-01"
    assert acme["model_id"] == "adoption"
    assert acme["categories"]
    assert acme["indicators"]
    assert {i["category"] for i in acme["indicators"]} <= {c["name"] for c in acme["categories"]}
    assert states["acme"].profile.name == "ACME"

    history = acme["history"]["items"]
    assert len(history) == 3
    times = [h["scored_at"] for h in history]
    cursor = acme["history"]["next_cursor"]
    while cursor:
        page = await api.client.get(
            "/v1/accounts/acme/history", params={"limit": 3, "cursor": cursor}, headers=ADMIN
        )
        times += [h["scored_at"] for h in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert len(times) == len(set(times)) == 7
    assert times == sorted(times, reverse=True)

    assert (await api.client.get("/v1/accounts/nobody", headers=ADMIN)).status_code == 404
    empty = await api.client.get("/v1/accounts/nobody/history", headers=ADMIN)
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_operations_endpoints(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    spec = (await api.client.get("/openapi.json")).json()
    assert "/v1/models/{model_id}/draft/preview" in spec["paths"]
    assert "application/yaml" in spec["paths"]["/v1/models"]["post"]["requestBody"]["content"]
    assert (await api.client.get("/docs")).status_code == 200
    await api.client.get("/v1/accounts/someone", headers=ADMIN)
    metrics = (await api.client.get("/metrics")).text
    assert (
        'healthscore_api_requests_total{code="404",route="/v1/accounts/{account_id}"} 1.0'
        in metrics
    )
    assert "someone" not in metrics
    assert "healthscore_api_request_duration_seconds_bucket" in metrics


async def test_alert_log_is_part_of_the_api(api: Api, ingest_only_token: str) -> None:
    assert (await api.client.get("/v1/alerts")).status_code == 401
    ingest = {"Authorization": f"Bearer {ingest_only_token}"}
    assert (await api.client.get("/v1/alerts", headers=ingest)).status_code == 403
    log = await api.client.get("/v1/alerts", headers=ADMIN)
    assert log.status_code == 200, log.text
    assert log.json() == {"items": [], "next_before": None, "next_before_id": None}
    account = await api.client.get("/v1/accounts/acme/alerts", headers=ADMIN)
    assert account.status_code == 200, account.text
