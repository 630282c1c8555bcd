"""Helpers for the alerts integration tests: score records, a config aimed at local receivers,
and a running alerts service against the real broker and database."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from healthscore.db.engine import create_db_engine
from healthscore.db.tables.alerts import alert_deliveries
from healthscore.topics import Topics
from healthscore.webhook_receiver import WebhookReceiver
from schemas.messages import ScoreChanged
from services.alerts.app import AlertsService, create_service
from services.alerts.config import ResolvedConfig, parse_config, resolve
from services.alerts.settings import AlertsSettings
from tests.support import produce

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST_DELIVERY = {
    "max_attempts": 4,
    "max_age_hours": 1,
    "backoff_initial_seconds": 0.05,
    "backoff_max_seconds": 0.2,
    "unhealthy_after_failures": 3,
}


def score_changed(
    account_id: str,
    old: str | None,
    new: str,
    *,
    at: dt.datetime | None = None,
    old_score: float | None = 62.0,
    score: float = 31.5,
    name: str | None = None,
    segment: str = "smb",
) -> ScoreChanged:
    at = at or dt.datetime.now(dt.UTC)
    return ScoreChanged.model_validate(
        {
            "account_id": account_id,
            "profile": {
                "name": name or f"Account {account_id}",
                "lifecycle_stage": "adoption",
                "segment": segment,
                "owner": "ann@example.com",
                "renewal_date": "2026-01-31",
            },
            "model_id": "default",
            "model_version": 1,
            "old_score": old_score,
            "new_score": score,
            "old_status": old,
            "new_status": new,
            "categories": [
                {
                    "name": "usage",
                    "weight": 1,
                    "score": 20,
                    "earned_points": 2,
                    "possible_points": 10,
                }
            ],
            "indicators": [
                {
                    "category": "usage",
                    "name": "weekly_active_users",
                    "metric": "distinct",
                    "value": 2,
                    "level": "poor",
                    "points": 0,
                    "max_points": 10,
                    "counted": True,
                }
            ],
            "drivers": [
                {
                    "category": "usage",
                    "indicator": "weekly_active_users",
                    "old_value": 40,
                    "new_value": 2,
                    "old_level": "good",
                    "new_level": "poor",
                    "points_delta": -10,
                    "score_impact": -30.5,
                }
            ],
            "cause": "time",
            "scored_at": at.isoformat(),
            "event_time": None,
        }
    )


async def publish(bootstrap: str, topics: Topics, *changes: ScoreChanged) -> None:
    await produce(
        bootstrap,
        topics.scores,
        [(c.account_id, c.model_dump_json()) for c in changes],
    )


def make_config(
    tmp_path: Path,
    destinations: list[dict[str, Any]],
    *,
    routes: list[dict[str, Any]] | None = None,
    delivery: Mapping[str, Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
) -> ResolvedConfig:
    secret_file = tmp_path / f"secret-{uuid.uuid4().hex[:6]}"
    secret_file.write_text(SECRET)
    for d in destinations:
        if d["type"] == "webhook":
            d.setdefault("secret_file", str(secret_file))
    doc: dict[str, Any] = {
        "destinations": destinations,
        "routes": routes or [{"destinations": [d["name"] for d in destinations]}],
        "delivery": {**FAST_DELIVERY, **(delivery or {})},
        "account_url": "http://127.0.0.1:8000/v1/accounts/{account_id}",
    }
    if rules is not None:
        doc["rules"] = rules
    return resolve(parse_config(doc))


def make_settings(
    kafka_bootstrap: str, database_url: str, topics: Topics, **extra: Any
) -> AlertsSettings:
    return AlertsSettings.model_validate(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "DATABASE_URL": database_url,
            "HEALTHSCORE_TOPIC_PREFIX": topics.prefix,
            "HEALTHSCORE_ALLOW_PRIVATE_WEBHOOKS": True,
            "HEALTHSCORE_ALERTS_GROUP_ID": f"alerts-{uuid.uuid4().hex[:8]}",
            "HEALTHSCORE_ALERTS_POLL_INTERVAL": 0.1,
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def running(settings: AlertsSettings, config: ResolvedConfig) -> AsyncIterator[AlertsService]:
    service = create_service(settings, config=config, registry=CollectorRegistry())
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as r:
        yield r


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str) -> AsyncIterator[sa.ext.asyncio.AsyncEngine]:
    engine = create_db_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def delivery_states(engine: Any) -> list[tuple[str, str, str, int]]:
    """(alert_id, destination, status, attempts) of every delivery."""
    d = alert_deliveries
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(d.c.alert_id, d.c.destination, d.c.status, d.c.attempts).order_by(
                    d.c.destination, d.c.alert_id
                )
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]
