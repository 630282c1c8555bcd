"""The alert log: alerts, their delivery state per destination, and dead letters.

Owned by the alerts engineer; the api includes it with ``app.include_router(alerts_router())``.

Contract with ``services/api/app.py``: the routes read the alerts tables
(``healthscore/db/tables/alerts.py``, written by ``healthscore alerts``) through the api's
database engine, which they find at ``request.app.state.db_engine`` (an ``AsyncEngine`` the api's
lifespan creates and disposes). Pass ``engine=`` to take it from somewhere else. Every route
requires an API key with the ``read`` (or ``admin``) scope, like the account routes.

Routes:

- ``GET /v1/alerts``: newest first, filter by ``account_id``, ``rule``, ``delivery_status``;
  keyset paging with ``before`` and ``before_id`` (the ``next_before`` and ``next_before_id`` of
  the previous page: alerts share ``raised_at`` often, e.g. every alert of one time sweep, so
  the time alone would skip the rest of a tie at a page boundary).
- ``GET /v1/alerts/dead-letters``: deliveries given up on, newest first, by ``destination``.
- ``GET /v1/alerts/{alert_id}``: one alert with every delivery and every attempt.
- ``GET /v1/accounts/{account_id}/alerts``: the alerts of one account, newest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.apikeys import ApiKey
from healthscore.db.tables.alerts import (
    alert_deliveries,
    alert_delivery_attempts,
    alerts,
)
from services.api.auth import require_read

Reader = Annotated[ApiKey, Depends(require_read)]
DeliveryStatus = Literal["pending", "delivered", "dead_lettered"]


class AttemptOut(BaseModel):
    attempt: int
    started_at: dt.datetime
    latency_seconds: float
    status_code: int | None
    error: str | None
    outcome: str


class DeliveryOut(BaseModel):
    destination: str
    webhook_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    dead_lettered_at: dt.datetime | None
    dead_reason: str | None
    attempt_log: list[AttemptOut] | None = None


class AlertOut(BaseModel):
    alert_id: str
    account_id: str
    rule: str
    rule_name: str
    old_status: str | None
    new_status: str
    old_score: float | None
    new_score: float
    raised_at: dt.datetime
    alert: dict[str, Any]
    deliveries: list[DeliveryOut]


class AlertPageOut(BaseModel):
    items: list[AlertOut]
    next_before: dt.datetime | None
    next_before_id: str | None = None


class DeadLetterOut(BaseModel):
    alert_id: str
    account_id: str
    rule_name: str
    raised_at: dt.datetime
    delivery: DeliveryOut


class DeadLetterPageOut(BaseModel):
    items: list[DeadLetterOut]


def engine_from_state(request: Request) -> AsyncEngine:
    engine: AsyncEngine | None = getattr(request.app.state, "db_engine", None)
    if engine is None:
        raise HTTPException(503, "the alert log is not connected to a database")
    return engine


_d = alert_deliveries
_a = alerts


def _delivery(row: Any, attempts: list[AttemptOut] | None = None) -> DeliveryOut:
    return DeliveryOut(
        destination=row.destination,
        webhook_id=row.webhook_id,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        dead_lettered_at=row.dead_lettered_at,
        dead_reason=row.dead_reason,
        attempt_log=attempts,
    )


_DELIVERY_COLUMNS = (
    _d.c.id,
    _d.c.alert_id,
    _d.c.destination,
    _d.c.webhook_id,
    _d.c.status,
    _d.c.attempts,
    _d.c.next_attempt_at,
    _d.c.last_status_code,
    _d.c.last_error,
    _d.c.delivered_at,
    _d.c.dead_lettered_at,
    _d.c.dead_reason,
)


async def list_alerts(
    engine: AsyncEngine,
    *,
    account_id: str | None,
    rules: Sequence[str],
    delivery_status: DeliveryStatus | None,
    before: dt.datetime | None,
    limit: int,
    before_id: str | None = None,
) -> AlertPageOut:
    query = sa.select(_a).order_by(_a.c.raised_at.desc(), _a.c.alert_id.desc()).limit(limit + 1)
    if account_id is not None:
        query = query.where(_a.c.account_id == account_id)
    if rules:
        query = query.where(sa.or_(_a.c.rule.in_(rules), _a.c.rule_name.in_(rules)))
    if delivery_status is not None:
        query = query.where(
            sa.exists().where(_d.c.alert_id == _a.c.alert_id, _d.c.status == delivery_status)
        )
    if before is not None and before_id is not None:
        # The page order is (raised_at, alert_id) descending: continue right after that row.
        query = query.where(
            sa.or_(
                _a.c.raised_at < before,
                sa.and_(_a.c.raised_at == before, _a.c.alert_id < before_id),
            )
        )
    elif before is not None:
        query = query.where(_a.c.raised_at < before)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        page, more = rows[:limit], len(rows) > limit
        ids = [r.alert_id for r in page]
        deliveries = (
            (
                await conn.execute(
                    sa.select(*_DELIVERY_COLUMNS)
                    .where(_d.c.alert_id.in_(ids))
                    .order_by(_d.c.destination)
                )
            ).all()
            if ids
            else []
        )
    by_alert: dict[str, list[DeliveryOut]] = {}
    for d in deliveries:
        by_alert.setdefault(d.alert_id, []).append(_delivery(d))
    items = [_alert(r, by_alert.get(r.alert_id, [])) for r in page]
    last = page[-1] if more and page else None
    return AlertPageOut(
        items=items,
        next_before=last.raised_at if last is not None else None,
        next_before_id=last.alert_id if last is not None else None,
    )


def _alert(row: Any, deliveries: list[DeliveryOut]) -> AlertOut:
    return AlertOut(
        alert_id=row.alert_id,
        account_id=row.account_id,
        rule=row.rule,
        rule_name=row.rule_name,
        old_status=row.old_status,
        new_status=row.new_status,
        old_score=row.old_score,
        new_score=row.new_score,
        raised_at=row.raised_at,
        alert=row.alert,
        deliveries=deliveries,
    )


async def get_alert(engine: AsyncEngine, alert_id: str) -> AlertOut | None:
    t = alert_delivery_attempts
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(_a).where(_a.c.alert_id == alert_id))).first()
        if row is None:
            return None
        deliveries = (
            await conn.execute(
                sa.select(*_DELIVERY_COLUMNS)
                .where(_d.c.alert_id == alert_id)
                .order_by(_d.c.destination)
            )
        ).all()
        attempts = (
            await conn.execute(
                sa.select(t)
                .where(t.c.delivery_id.in_([d.id for d in deliveries]))
                .order_by(t.c.delivery_id, t.c.attempt)
            )
        ).all()
    log: dict[int, list[AttemptOut]] = {}
    for a in attempts:
        log.setdefault(a.delivery_id, []).append(
            AttemptOut(
                attempt=a.attempt,
                started_at=a.started_at,
                latency_seconds=a.latency_seconds,
                status_code=a.status_code,
                error=a.error,
                outcome=a.outcome,
            )
        )
    return _alert(row, [_delivery(d, log.get(d.id, [])) for d in deliveries])


async def list_dead_letters(
    engine: AsyncEngine, *, destination: str | None, limit: int
) -> DeadLetterPageOut:
    query = (
        sa.select(*_DELIVERY_COLUMNS, _a.c.account_id, _a.c.rule_name, _a.c.raised_at)
        .join(_a, _a.c.alert_id == _d.c.alert_id)
        .where(_d.c.status == "dead_lettered")
        .order_by(_d.c.dead_lettered_at.desc(), _d.c.id.desc())
        .limit(limit)
    )
    if destination is not None:
        query = query.where(_d.c.destination == destination)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return DeadLetterPageOut(
        items=[
            DeadLetterOut(
                alert_id=r.alert_id,
                account_id=r.account_id,
                rule_name=r.rule_name,
                raised_at=r.raised_at,
                delivery=_delivery(r),
            )
            for r in rows
        ]
    )


def alerts_router(engine: Callable[..., AsyncEngine] = engine_from_state) -> APIRouter:
    """Routes of the alert log; ``engine`` is a FastAPI dependency giving the database engine."""
    # A module-level alias cannot carry the injected dependency, and a local one is invisible
    # to FastAPI's annotation resolution (postponed annotations), hence plain defaults.
    db_engine = Depends(engine)
    router = APIRouter(tags=["alerts"])

    @router.get("/v1/alerts", response_model=AlertPageOut)
    async def alert_log(
        _: Reader,
        db: AsyncEngine = db_engine,
        account_id: str | None = None,
        rule: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
        delivery_status: DeliveryStatus | None = None,
        before: dt.datetime | None = None,
        before_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AlertPageOut:
        """List alerts newest first, with their delivery state per destination."""
        return await list_alerts(
            db,
            account_id=account_id,
            rules=rule,
            delivery_status=delivery_status,
            before=before,
            before_id=before_id,
            limit=limit,
        )

    @router.get("/v1/alerts/dead-letters", response_model=DeadLetterPageOut)
    async def dead_letters(
        _: Reader,
        db: AsyncEngine = db_engine,
        destination: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> DeadLetterPageOut:
        """List deliveries that were given up on (dead letters), newest first."""
        return await list_dead_letters(db, destination=destination, limit=limit)

    @router.get("/v1/alerts/{alert_id}", response_model=AlertOut)
    async def alert_detail(alert_id: str, _: Reader, db: AsyncEngine = db_engine) -> AlertOut:
        """Get one alert with every delivery and every delivery attempt."""
        found = await get_alert(db, alert_id)
        if found is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return found

    @router.get("/v1/accounts/{account_id}/alerts", response_model=AlertPageOut)
    async def account_alerts(
        account_id: str,
        _: Reader,
        db: AsyncEngine = db_engine,
        before: dt.datetime | None = None,
        before_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AlertPageOut:
        """List one account's alerts newest first, with their delivery state."""
        return await list_alerts(
            db,
            account_id=account_id,
            rules=(),
            delivery_status=None,
            before=before,
            before_id=before_id,
            limit=limit,
        )

    return router
