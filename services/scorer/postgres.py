"""PostgresScoreWriter: current scores, states and score history to PostgreSQL, in batches.

The agent hands over one :class:`~services.scorer.scoring.Persist` per processed record together
with the record's ack. Rows are coalesced per account (the newest revision wins) and written every
``flush_interval`` seconds or ``batch_size`` accounts, in one transaction of idempotent statements:

- ``account_scores``: INSERT .. ON CONFLICT (account_id) DO UPDATE .. WHERE stored
  ``state_revision`` <= new, for a published change (every column); an UPDATE of the state and
  profile columns, same guard, for a state-only change.
- ``score_history``: INSERT .. ON CONFLICT DO NOTHING on (account_id, scored_at, model_version).

Only after the transaction commits are the records acked, so their Kafka offsets are committed
only once PostgreSQL holds their effects: a crash before that replays them (at-least-once), and
the guarded upserts make the replay harmless. PostgreSQL slowness or an outage never drops a row:
the batch is retried with backoff, and once ``max_pending`` records wait, ``submit`` blocks the
stream (backpressure) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.db.tables.scores import account_scores, score_history
from schemas.messages import AccountProfile
from services.scorer.metrics import ScorerMetrics
from services.scorer.scoring import Change, Persist

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[object]]

_PROFILE_COLUMNS = ("name", "lifecycle_stage", "segment", "owner", "arr_cents", "licenses")
_MAX_BACKOFF_SECONDS = 5.0


def _profile_values(profile: AccountProfile) -> dict[str, Any]:
    values: dict[str, Any] = {column: getattr(profile, column) for column in _PROFILE_COLUMNS}
    values["renewal_date"] = (
        dt.date.fromisoformat(profile.renewal_date) if profile.renewal_date else None
    )
    return values


def current_row(persist: Persist, change: Change) -> dict[str, Any]:
    row = {
        "account_id": persist.account_id,
        "score": change.new_score,
        "status": change.new_status,
        "previous_score": change.old_score,
        "previous_status": change.old_status,
        "score_change": (
            None if change.old_score is None else round(change.new_score - change.old_score, 1)
        ),
        "model_id": change.model_id,
        "model_version": change.model_version,
        "categories": change.categories,
        "indicators": change.indicators,
        "drivers": change.drivers,
        "cause": change.cause,
        "state": persist.state,
        "state_revision": persist.revision,
        "scored_at": change.scored_at,
        "event_time": change.event_time,
    }
    row.update(_profile_values(persist.profile))
    return row


def state_row(persist: Persist) -> dict[str, Any]:
    row = {
        "b_account_id": persist.account_id,
        "b_revision": persist.revision,
        "state": persist.state,
        "state_revision": persist.revision,
    }
    row.update(_profile_values(persist.profile))
    return row


def history_row(change: Change) -> dict[str, Any]:
    return {
        "account_id": change.account_id,
        "scored_at": change.scored_at,
        "score": change.new_score,
        "status": change.new_status,
        "old_score": change.old_score,
        "old_status": change.old_status,
        "model_id": change.model_id,
        "model_version": change.model_version,
        "cause": change.cause,
        "event_time": change.event_time,
        "drivers": change.drivers,
        "categories": change.categories,
    }


def _upsert_current() -> Any:
    stmt = insert(account_scores)
    columns: dict[str, Any] = {
        c.name: stmt.excluded[c.name]
        for c in account_scores.columns
        if c.name not in ("account_id", "updated_at")
    }
    columns["updated_at"] = func.now()
    return stmt.on_conflict_do_update(
        index_elements=[account_scores.c.account_id],
        set_=columns,
        where=account_scores.c.state_revision <= stmt.excluded.state_revision,
    )


def _update_state() -> Any:
    # SET columns come from the parameters (state, state_revision, profile columns).
    return (
        update(account_scores)
        .where(account_scores.c.account_id == bindparam("b_account_id"))
        .where(account_scores.c.state_revision <= bindparam("b_revision"))
        .values(updated_at=func.now())
    )


def _insert_history() -> Any:
    return insert(score_history).on_conflict_do_nothing(
        index_elements=["account_id", "scored_at", "model_version"]
    )


class _Pending:
    """Coalesced rows of one account: the newest full row and the newest state."""

    __slots__ = ("change", "persist")

    def __init__(self, persist: Persist, change: Change | None) -> None:
        self.persist = persist
        self.change = change

    def merge(self, persist: Persist) -> None:
        if persist.revision < self.persist.revision:
            return  # an older redelivery: the newer state already waits here
        if persist.published is not None:
            self.change = persist.published
        self.persist = persist


class PostgresScoreWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        metrics: ScorerMetrics,
        *,
        batch_size: int = 1000,
        flush_interval: float = 0.1,
        max_pending: int = 20_000,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._rows: dict[str, _Pending] = {}
        self._history: list[dict[str, Any]] = []
        self._acks: list[Ack] = []
        self._records = 0  # records handed over and not yet acked
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._upsert = _upsert_current()
        self._update = _update_state()
        self._history_insert = _insert_history()

    @property
    def pending(self) -> int:
        return self._records

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="postgres-score-writer")

    async def stop(self) -> None:
        """Write what is pending (bounded by the caller's shutdown timeout) and stop."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def submit(self, persist: Persist | None, ack: Ack) -> None:
        """Hand over one processed record; ``ack`` runs once PostgreSQL holds its effects.
        Waits while ``max_pending`` records are unwritten."""
        while self._records >= self._max_pending:
            self._room.clear()
            self._wakeup.set()
            await self._room.wait()
        if persist is not None:
            pending = self._rows.get(persist.account_id)
            if pending is None:
                self._rows[persist.account_id] = _Pending(persist, persist.published)
            else:
                pending.merge(persist)
            if persist.published is not None:
                self._history.append(history_row(persist.published))
        self._acks.append(ack)
        self._records += 1
        self._idle.clear()
        self._metrics.postgres_pending.set(self._records)
        if len(self._rows) >= self._batch_size:
            self._wakeup.set()

    async def drained(self) -> None:
        """Wait until everything handed over so far is written (tests, shutdown)."""
        self._wakeup.set()
        await self._idle.wait()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            if not self._acks:
                self._idle.set()
                if self._stopping:
                    return
                continue
            rows, history, acks = self._rows, self._history, self._acks
            self._rows, self._history, self._acks = {}, [], []
            while True:
                try:
                    await self._write(rows, history)
                    backoff = 0.1
                    break
                except Exception:
                    # Connection loss, failover, a restart: keep the batch and retry. Rows are
                    # never dropped; the stream waits once max_pending is reached.
                    self._metrics.postgres_errors.inc()
                    log.exception("postgres batch failed; retrying", extra={"rows": len(rows)})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            for ack in acks:
                await ack()
            self._records -= len(acks)
            self._metrics.postgres_pending.set(self._records)
            if self._records < self._max_pending:
                self._room.set()
            if not self._acks:
                self._idle.set()

    async def _write(self, rows: dict[str, _Pending], history: list[dict[str, Any]]) -> None:
        full: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        for pending in rows.values():
            if pending.change is not None:
                full.append(current_row(pending.persist, pending.change))
            else:
                states.append(state_row(pending.persist))
        started = time.perf_counter()
        async with self._engine.begin() as conn:
            if full:
                await conn.execute(self._upsert, full)
            if states:
                await conn.execute(self._update, states)
            if history:
                await conn.execute(self._history_insert, history)
        self._metrics.postgres_flush.observe(time.perf_counter() - started)
        self._metrics.postgres_rows.labels("account_scores").inc(len(full) + len(states))
        self._metrics.postgres_rows.labels("score_history").inc(len(history))
