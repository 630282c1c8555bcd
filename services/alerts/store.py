"""PostgreSQL adapter of the alerts service: rule state, the alert log and the delivery outbox.

:class:`AlertStore` is the port the consumer and the delivery workers depend on;
:class:`PostgresAlertStore` implements it with SQLAlchemy Core on asyncpg. The consumer writes
rule state, alerts and their pending deliveries in **one transaction** before it commits its Kafka
offsets, so an alert is either fully recorded (and will be delivered) or the record is consumed
again. Workers claim due deliveries with a lease (``FOR UPDATE SKIP LOCKED``), so several workers
or processes never send the same claimed row at once and a crashed worker's rows come back after
the lease.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.db.tables.alerts import (
    alert_deliveries,
    alert_delivery_attempts,
    alert_rule_state,
    alerts,
)
from schemas.messages import AlertRaised
from services.alerts.crm import webhook_id
from services.alerts.rules import RuleState

Outcome = Literal["delivered", "retry", "dead_lettered"]


@dataclass(frozen=True)
class StoredState:
    state: RuleState
    source_partition: int | None = None
    source_offset: int | None = None


@dataclass(frozen=True)
class StateWrite:
    account_id: str
    state: RuleState
    source_partition: int | None
    source_offset: int | None
    due_at: dt.datetime | None


@dataclass(frozen=True)
class NewAlert:
    alert: AlertRaised
    breakdown: Mapping[str, Any]
    destinations: tuple[str, ...]
    source_partition: int | None = None
    source_offset: int | None = None


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    alert_id: str
    webhook_id: str
    attempts: int  # attempts made before this one
    created_at: dt.datetime
    alert: AlertRaised
    breakdown: Mapping[str, Any]


@dataclass(frozen=True)
class AttemptRecord:
    delivery_id: int
    attempt: int  # 1-based number of this attempt
    started_at: dt.datetime
    latency_seconds: float
    status_code: int | None
    error: str | None
    outcome: Outcome
    next_attempt_at: dt.datetime | None  # for retry
    dead_reason: str | None  # for dead_lettered
    finished_at: dt.datetime
    attempted: bool = True  # False: given up without sending (expired before an attempt)


class AlertStore(Protocol):
    async def load_states(self, account_ids: Sequence[str]) -> dict[str, StoredState]:
        """Rule state of these accounts (missing accounts are absent from the result)."""
        ...

    async def save(
        self, states: Sequence[StateWrite], new_alerts: Sequence[NewAlert], now: dt.datetime
    ) -> None:
        """Write rule state, alerts and pending deliveries atomically (idempotent on alert id)."""
        ...

    async def due_states(
        self, now: dt.datetime, partitions: Sequence[int] | None, limit: int
    ) -> dict[str, StoredState]:
        """Accounts whose time-driven rules are due at ``now`` (in ``partitions``, if given)."""
        ...

    async def claim(
        self, destination: str, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due pending deliveries of ``destination``, oldest first."""
        ...

    async def record(self, attempts: Sequence[AttemptRecord]) -> None:
        """Record attempts and move their deliveries on (retry, delivered, dead_lettered)."""
        ...

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give up the lease of claimed deliveries that were not recorded (a worker stopping)."""
        ...

    async def next_due(self, destination: str) -> dt.datetime | None:
        """When the earliest pending delivery of ``destination`` may be claimed."""
        ...

    async def pending_count(self, destination: str) -> int: ...


class PostgresAlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load_states(self, account_ids: Sequence[str]) -> dict[str, StoredState]:
        if not account_ids:
            return {}
        t = alert_rule_state
        query = sa.select(t.c.account_id, t.c.state, t.c.source_partition, t.c.source_offset).where(
            t.c.account_id.in_(list(set(account_ids)))
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            row.account_id: StoredState(
                RuleState.from_json(row.state), row.source_partition, row.source_offset
            )
            for row in rows
        }

    async def save(
        self, states: Sequence[StateWrite], new_alerts: Sequence[NewAlert], now: dt.datetime
    ) -> None:
        if not states and not new_alerts:
            return
        async with self._engine.begin() as conn:
            if states:
                stmt = insert(alert_rule_state)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[alert_rule_state.c.account_id],
                    set_={
                        "state": stmt.excluded.state,
                        "source_partition": stmt.excluded.source_partition,
                        "source_offset": stmt.excluded.source_offset,
                        "due_at": stmt.excluded.due_at,
                        "updated_at": sa.func.now(),
                    },
                )
                await conn.execute(
                    stmt,
                    [
                        {
                            "account_id": s.account_id,
                            "state": s.state.to_json(),
                            "source_partition": s.source_partition,
                            "source_offset": s.source_offset,
                            "due_at": s.due_at,
                        }
                        for s in states
                    ],
                )
            if new_alerts:
                await conn.execute(
                    insert(alerts).on_conflict_do_nothing(index_elements=[alerts.c.alert_id]),
                    [_alert_row(a) for a in new_alerts],
                )
                deliveries = [
                    {
                        "alert_id": a.alert.alert_id,
                        "destination": destination,
                        "webhook_id": webhook_id(a.alert.alert_id, destination),
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for a in new_alerts
                    for destination in a.destinations
                ]
                if deliveries:
                    await conn.execute(
                        insert(alert_deliveries).on_conflict_do_nothing(
                            index_elements=[
                                alert_deliveries.c.alert_id,
                                alert_deliveries.c.destination,
                            ]
                        ),
                        deliveries,
                    )

    async def due_states(
        self, now: dt.datetime, partitions: Sequence[int] | None, limit: int
    ) -> dict[str, StoredState]:
        t = alert_rule_state
        query = (
            sa.select(t.c.account_id, t.c.state, t.c.source_partition, t.c.source_offset)
            .where(t.c.due_at.is_not(None), t.c.due_at <= now)
            .order_by(t.c.due_at)
            .limit(limit)
        )
        if partitions is not None:
            query = query.where(t.c.source_partition.in_(list(partitions)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            row.account_id: StoredState(
                RuleState.from_json(row.state), row.source_partition, row.source_offset
            )
            for row in rows
        }

    async def claim(
        self, destination: str, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[ClaimedDelivery]:
        d = alert_deliveries
        due = (
            sa.select(d.c.id)
            .where(
                d.c.destination == destination,
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            sa.update(d)
            .where(d.c.id.in_(due), d.c.alert_id == alerts.c.alert_id)
            .values(lease_until=lease_until)
            .returning(
                d.c.id,
                d.c.alert_id,
                d.c.webhook_id,
                d.c.attempts,
                d.c.created_at,
                alerts.c.alert,
                alerts.c.breakdown,
            )
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(stmt)).all()
        claimed = [
            ClaimedDelivery(
                id=row.id,
                alert_id=row.alert_id,
                webhook_id=row.webhook_id,
                attempts=row.attempts,
                created_at=row.created_at,
                alert=AlertRaised.model_validate(row.alert),
                breakdown=row.breakdown,
            )
            for row in rows
        ]
        claimed.sort(key=lambda c: (c.created_at, c.id))
        return claimed

    async def record(self, attempts: Sequence[AttemptRecord]) -> None:
        if not attempts:
            return
        d = alert_deliveries
        update = (
            sa.update(d)
            .where(d.c.id == sa.bindparam("b_id"))
            .values(
                attempts=sa.bindparam("b_attempts"),
                status=sa.bindparam("b_status"),
                lease_until=None,
                next_attempt_at=sa.func.coalesce(
                    sa.bindparam("b_next", type_=sa.DateTime(timezone=True)), d.c.next_attempt_at
                ),
                last_status_code=sa.bindparam("b_code"),
                last_error=sa.bindparam("b_error"),
                delivered_at=sa.bindparam("b_delivered_at", type_=sa.DateTime(timezone=True)),
                dead_lettered_at=sa.bindparam("b_dead_at", type_=sa.DateTime(timezone=True)),
                dead_reason=sa.bindparam("b_reason"),
            )
        )
        update_rows = [
            {
                "b_id": a.delivery_id,
                "b_attempts": a.attempt if a.attempted else a.attempt - 1,
                "b_status": "pending" if a.outcome == "retry" else a.outcome,
                "b_next": a.next_attempt_at,
                "b_code": a.status_code,
                "b_error": _clip(a.error),
                "b_delivered_at": a.finished_at if a.outcome == "delivered" else None,
                "b_dead_at": a.finished_at if a.outcome == "dead_lettered" else None,
                "b_reason": _clip(a.dead_reason),
            }
            for a in attempts
        ]
        attempt_rows = [
            {
                "delivery_id": a.delivery_id,
                "attempt": a.attempt,
                "started_at": a.started_at,
                "latency_seconds": a.latency_seconds,
                "status_code": a.status_code,
                "error": _clip(a.error),
                "outcome": a.outcome,
            }
            for a in attempts
            if a.attempted
        ]
        async with self._engine.begin() as conn:
            await conn.execute(update, update_rows)
            if attempt_rows:
                await conn.execute(sa.insert(alert_delivery_attempts), attempt_rows)

    async def release(self, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        d = alert_deliveries
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(d)
                .where(d.c.id.in_(list(delivery_ids)), d.c.status == "pending")
                .values(lease_until=None)
            )

    async def next_due(self, destination: str) -> dt.datetime | None:
        d = alert_deliveries
        query = sa.select(
            sa.func.min(
                sa.func.greatest(
                    d.c.next_attempt_at, sa.func.coalesce(d.c.lease_until, d.c.next_attempt_at)
                )
            )
        ).where(d.c.destination == destination, d.c.status == "pending")
        async with self._engine.connect() as conn:
            value: dt.datetime | None = await conn.scalar(query)
        return value

    async def pending_count(self, destination: str) -> int:
        d = alert_deliveries
        query = sa.select(sa.func.count()).where(
            d.c.destination == destination, d.c.status == "pending"
        )
        async with self._engine.connect() as conn:
            return int(await conn.scalar(query) or 0)


def _clip(text: str | None, limit: int = 500) -> str | None:
    return None if text is None else text[:limit]


def breakdown_of(change: Any) -> dict[str, Any]:
    """The score breakdown a CRM webhook receives (from a ScoreChanged)."""
    return {
        "score": change.new_score,
        "status": change.new_status,
        "model_id": change.model_id,
        "model_version": change.model_version,
        "scored_at": change.scored_at.isoformat(),
        "categories": [c.model_dump(mode="json") for c in change.categories],
        "indicators": [i.model_dump(mode="json") for i in change.indicators],
    }


def _alert_row(new: NewAlert) -> dict[str, Any]:
    a = new.alert
    return {
        "alert_id": a.alert_id,
        "account_id": a.account_id,
        "rule": a.rule,
        "rule_name": a.rule_name,
        "old_status": a.old_status,
        "new_status": a.new_status,
        "old_score": a.old_score,
        "new_score": a.new_score,
        "raised_at": a.raised_at,
        "alert": a.model_dump(mode="json"),
        "breakdown": dict(new.breakdown),
        "source_partition": new.source_partition,
        "source_offset": new.source_offset,
    }
