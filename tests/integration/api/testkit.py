"""Helpers for the api's integration tests: the app driven in-process over ASGI (lifespan
included), and seeding of the scorer's tables as the scorer writes them."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.clock import ManualClock
from healthscore.db.tables.scores import account_scores, score_history
from healthscore.engine import (
    AccountState,
    PublishedModel,
    apply_event,
    default_models,
    new_state,
    score,
    select_model,
)
from healthscore.topics import Topics
from schemas.events import event_from_obj
from services.api.app import create_app
from services.api.settings import ApiSettings

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
ADMIN_TOKEN = "bootstrap-secret-for-api-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclasses.dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    registry: CollectorRegistry
    clock: ManualClock
    settings: ApiSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_api(settings: ApiSettings) -> AsyncIterator[Api]:
    registry = CollectorRegistry()
    clock = ManualClock(NOW)
    app = create_app(settings, registry=registry, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Api(client, app, registry, clock, settings)


def api_settings(database_url: str, bootstrap: str, topics: Topics, **extra: Any) -> ApiSettings:
    return ApiSettings.model_validate(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HEALTHSCORE_TOPIC_PREFIX": topics.prefix,
            "HEALTHSCORE_BOOTSTRAP_API_KEY": ADMIN_TOKEN,
            **extra,
        }
    )


# --- seeding the scorer's tables --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seed:
    account_id: str
    logins: int
    lifecycle_stage: str = "adoption"
    segment: str = "smb"
    owner: str = "ana"
    renewal_date: dt.date | None = None
    previous_score: float | None = None


def build_state(seed: Seed) -> AccountState:
    state = new_state(seed.account_id)
    profile: dict[str, Any] = {
        "name": seed.account_id.upper(),
        "lifecycle_stage": seed.lifecycle_stage,
        "segment": seed.segment,
        "owner": seed.owner,
        "licenses": 10,
    }
    if seed.renewal_date is not None:
        profile["renewal_date"] = seed.renewal_date.isoformat()
    events = [
        {
            "event_id": f"{seed.account_id}-profile",
            "account_id": seed.account_id,
            "type": "account",
            "occurred_at": "2026-01-15T00:00:00Z",
            "payload": profile,
        }
    ]
    events += [
        {
            "event_id": f"{seed.account_id}-login-{i}",
            "account_id": seed.account_id,
            "type": "usage",
            "occurred_at": (NOW - dt.timedelta(days=1 + i % 20, hours=i % 7)).isoformat(),
            "payload": {"metric": "login", "user_id": f"u{i % 10}", "feature": f"f{i % 6}"},
        }
        for i in range(seed.logins)
    ]
    for event in events:
        apply_event(state, event_from_obj(event))
    return state


async def seed_accounts(
    engine: AsyncEngine,
    seeds: Sequence[Seed],
    models: Sequence[PublishedModel] | None = None,
    history: Callable[[Seed], int] = lambda seed: 0,
) -> dict[str, AccountState]:
    """Rows in account_scores (and ``history(seed)`` rows in score_history per account) as the
    scorer would write them, scored by the engine with ``models`` (the repository's default)."""
    models = models if models is not None else default_models()
    states: dict[str, AccountState] = {}
    rows, history_rows = [], []
    for seed in seeds:
        state = build_state(seed)
        states[seed.account_id] = state
        card = score(state, select_model(models, state.profile), NOW)
        categories = [dataclasses.asdict(c) for c in card.categories]
        indicators = [dataclasses.asdict(i) for i in card.indicators]
        rows.append(
            {
                "account_id": seed.account_id,
                "score": card.score,
                "status": card.status,
                "previous_score": seed.previous_score,
                "previous_status": None,
                "score_change": (
                    round(card.score - seed.previous_score, 1)
                    if seed.previous_score is not None
                    else None
                ),
                "model_id": card.model_id,
                "model_version": card.model_version,
                "categories": categories,
                "indicators": indicators,
                "drivers": [],
                "cause": "event",
                "name": state.profile.name,
                "lifecycle_stage": seed.lifecycle_stage,
                "segment": seed.segment,
                "owner": seed.owner,
                "renewal_date": seed.renewal_date,
                "arr_cents": 100_000,
                "licenses": 10,
                "state": state.to_bytes(),
                "state_revision": 1,
                "scored_at": NOW,
                "event_time": NOW,
            }
        )
        for n in range(history(seed)):
            history_rows.append(
                {
                    "account_id": seed.account_id,
                    "scored_at": NOW - dt.timedelta(hours=n),
                    "score": float(50 + n % 50),
                    "status": "amber",
                    "old_score": None,
                    "old_status": None,
                    "model_id": card.model_id,
                    "model_version": card.model_version,
                    "cause": "event",
                    "event_time": NOW - dt.timedelta(hours=n),
                    "drivers": [],
                    "categories": categories,
                }
            )
    async with engine.begin() as conn:
        if rows:
            await conn.execute(account_scores.insert(), rows)
        if history_rows:
            await conn.execute(score_history.insert(), history_rows)
    return states
