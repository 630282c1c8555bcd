"""Account reads from the scorer's tables (healthscore/db/tables/scores.py).

Lists are keyset-paginated: the cursor carries the sort value and the account id of the last row,
so a page is one index range scan however deep the caller pages, and rows moving while a client
pages do not make it skip or repeat the rows it has not reached. Accounts with no value for the
sort key (no renewal date, no previous score) come last in both directions.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.db.tables.scores import account_scores, score_history

SortKey = Literal["score", "renewal_date", "score_change", "account_id"]
SORT_KEYS: tuple[SortKey, ...] = ("score", "renewal_date", "score_change", "account_id")

_c = account_scores.c
_SORT_COLUMNS: dict[SortKey, sa.ColumnElement[Any]] = {
    "score": _c.score,
    "renewal_date": _c.renewal_date,
    "score_change": _c.score_change,
    "account_id": _c.account_id,
}

_LIST_COLUMNS = (
    _c.account_id,
    _c.name,
    _c.score,
    _c.status,
    _c.previous_score,
    _c.previous_status,
    _c.score_change,
    _c.lifecycle_stage,
    _c.segment,
    _c.owner,
    _c.renewal_date,
    _c.arr_cents,
    _c.licenses,
    _c.model_id,
    _c.model_version,
    _c.scored_at,
)
_DETAIL_COLUMNS = (
    *_LIST_COLUMNS,
    _c.categories,
    _c.indicators,
    _c.drivers,
    _c.cause,
    _c.event_time,
    _c.updated_at,
)
_h = score_history.c
_HISTORY_COLUMNS = (
    _h.id,
    _h.scored_at,
    _h.score,
    _h.status,
    _h.old_score,
    _h.old_status,
    _h.model_id,
    _h.model_version,
    _h.cause,
    _h.event_time,
    _h.drivers,
    _h.categories,
)


class BadCursorError(ValueError):
    """The cursor was not issued for this listing (HTTP 422)."""


@dataclass(frozen=True)
class AccountFilter:
    status: Sequence[str] = ()
    lifecycle_stage: Sequence[str] = ()
    segment: Sequence[str] = ()
    owner: Sequence[str] = ()
    model_id: Sequence[str] = ()
    renewal_before: dt.date | None = None


@dataclass(frozen=True)
class Sort:
    key: SortKey = "score"
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> Sort:
        """``score`` (ascending) or ``-score`` (descending); raises ValueError for unknown keys."""
        descending = text.startswith("-")
        key = text.lstrip("-")
        if key not in SORT_KEYS:
            raise ValueError(f"sort by one of {', '.join(SORT_KEYS)} (prefix '-' to descend)")
        return cls(key, descending)

    def __str__(self) -> str:
        return f"-{self.key}" if self.descending else self.key


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class AccountDetail:
    account: dict[str, Any]
    history: Page = field(default_factory=lambda: Page([], None))


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, Any]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise BadCursorError("cursor: not a cursor this api issued") from None
    if not isinstance(data, dict):
        raise BadCursorError("cursor: not a cursor this api issued")
    return data


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


class PostgresAccountReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def list_accounts(
        self, filters: AccountFilter, sort: Sort, limit: int, cursor: str | None = None
    ) -> Page:
        expr = _SORT_COLUMNS[sort.key]
        query = sa.select(*_LIST_COLUMNS)
        for column, values in (
            (_c.status, filters.status),
            (_c.lifecycle_stage, filters.lifecycle_stage),
            (_c.segment, filters.segment),
            (_c.owner, filters.owner),
            (_c.model_id, filters.model_id),
        ):
            if values:
                query = query.where(column.in_(list(values)))
        if filters.renewal_before is not None:
            query = query.where(_c.renewal_date < filters.renewal_before)
        if cursor is not None:
            query = query.where(self._after(expr, sort, decode_cursor(cursor)))
        ordered = expr.desc() if sort.descending else expr.asc()
        query = query.order_by(ordered.nulls_last(), _c.account_id.asc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = [_plain(r) for r in await conn.execute(query)]
        if len(rows) <= limit:
            return Page(rows, None)
        rows = rows[:limit]
        last = rows[-1]
        value = last[sort.key]
        next_cursor = encode_cursor(
            {
                "s": str(sort),
                "v": value.isoformat() if isinstance(value, dt.date) else value,
                "id": last["account_id"],
            }
        )
        return Page(rows, next_cursor)

    @staticmethod
    def _after(expr: sa.ColumnElement[Any], sort: Sort, data: dict[str, Any]) -> Any:
        if data.get("s") != str(sort) or not isinstance(data.get("id"), str):
            raise BadCursorError("cursor: issued for another sort order")
        account_id: str = data["id"]
        value = data.get("v")
        if sort.key == "account_id":
            return _c.account_id < account_id if sort.descending else _c.account_id > account_id
        if value is None:
            return sa.and_(expr.is_(None), _c.account_id > account_id)
        try:
            if sort.key == "renewal_date":
                value = dt.date.fromisoformat(value)
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise BadCursorError("cursor: not a cursor this api issued")
        except (TypeError, ValueError):
            raise BadCursorError("cursor: not a cursor this api issued") from None
        beyond = expr < value if sort.descending else expr > value
        return sa.or_(beyond, sa.and_(expr == value, _c.account_id > account_id), expr.is_(None))

    async def get_account(self, account_id: str, history_limit: int) -> AccountDetail | None:
        query = sa.select(*_DETAIL_COLUMNS).where(_c.account_id == account_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return AccountDetail(_plain(row), await self.history(account_id, history_limit))

    async def history(self, account_id: str, limit: int, cursor: str | None = None) -> Page:
        """Score changes of one account, newest first."""
        query = sa.select(*_HISTORY_COLUMNS).where(_h.account_id == account_id)
        if cursor is not None:
            data = decode_cursor(cursor)
            try:
                at = dt.datetime.fromisoformat(data["t"])
                last_id = int(data["id"])
            except (KeyError, TypeError, ValueError):
                raise BadCursorError("cursor: not a cursor this api issued") from None
            query = query.where(
                sa.or_(_h.scored_at < at, sa.and_(_h.scored_at == at, _h.id < last_id))
            )
        query = query.order_by(_h.scored_at.desc(), _h.id.desc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = [_plain(r) for r in await conn.execute(query)]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(
                {"t": rows[-1]["scored_at"].isoformat(), "id": rows[-1]["id"]}
            )
        for row in rows:
            del row["id"]
        return Page(rows, next_cursor)

    async def states(self, chunk_size: int) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every account's stored engine state, streamed with a server-side cursor."""
        query = sa.select(_c.account_id, _c.state).order_by(_c.account_id)
        async with self._engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=chunk_size))
            async for partition in result.partitions(chunk_size):
                yield [(r.account_id, bytes(r.state)) for r in partition]

    async def ready(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
