"""Account read routes: thin translations between HTTP and :class:`PostgresAccountReader`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from healthscore.apikeys import ApiKey
from services.api.accounts import AccountFilter, PostgresAccountReader, Sort
from services.api.auth import require_read
from services.api.views import AccountDetailOut, AccountPageOut, ErrorOut, HistoryPageOut

Reader = Annotated[ApiKey, Depends(require_read)]
Many = Annotated[list[str], Query()]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong API key"},
    403: {"model": ErrorOut, "description": "the key lacks the read or admin scope"},
    404: {"model": ErrorOut, "description": "no such account"},
    422: {"model": ErrorOut, "description": "bad filter, sort or cursor"},
}


def _reader(request: Request) -> PostgresAccountReader:
    reader: PostgresAccountReader = request.app.state.accounts
    return reader


Accounts = Annotated[PostgresAccountReader, Depends(_reader)]


def _sort(
    sort: Annotated[
        str,
        Query(description="score, renewal_date, score_change or account_id; '-' descends"),
    ] = "score",
) -> Sort:
    try:
        return Sort.parse(sort)
    except ValueError as exc:
        raise HTTPException(422, f"sort: {exc}") from None


def accounts_router() -> APIRouter:
    router = APIRouter(prefix="/v1/accounts", tags=["accounts"], responses=_ERRORS)

    @router.get("", response_model=AccountPageOut)
    async def list_accounts(
        accounts: Accounts,
        _: Reader,
        sort: Annotated[Sort, Depends(_sort)],
        status: Many = [],  # noqa: B006 - FastAPI copies query defaults
        lifecycle_stage: Many = [],  # noqa: B006
        segment: Many = [],  # noqa: B006
        owner: Many = [],  # noqa: B006
        model_id: Many = [],  # noqa: B006
        renewal_before: dt.date | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> AccountPageOut:
        """List accounts filtered by status, lifecycle stage, segment or owner, sorted, paged."""
        filters = AccountFilter(status, lifecycle_stage, segment, owner, model_id, renewal_before)
        return AccountPageOut.of(await accounts.list_accounts(filters, sort, limit, cursor))

    @router.get("/{account_id}", response_model=AccountDetailOut)
    async def get_account(
        account_id: str,
        accounts: Accounts,
        _: Reader,
        history_limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> AccountDetailOut:
        """Get an account's score with its breakdown, drivers and latest history."""
        detail = await accounts.get_account(account_id, history_limit)
        if detail is None:
            raise HTTPException(404, f"no account {account_id!r} has been scored")
        return AccountDetailOut.of(detail)

    @router.get("/{account_id}/history", response_model=HistoryPageOut)
    async def history(
        account_id: str,
        accounts: Accounts,
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> HistoryPageOut:
        """Page through an account's score changes, newest first."""
        return HistoryPageOut.of(await accounts.history(account_id, limit, cursor))

    return router
