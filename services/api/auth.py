"""Who may call what: ``admin`` manages health models; ``read`` (or ``admin``) reads.

Keys come from ``healthscore.apikeys`` (the same store and headers as ingest:
``Authorization: Bearer <key>`` or ``X-API-Key``). A key with only the ``ingest`` scope reads
nothing here: it is meant for data sources, which should not see customer scores.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from healthscore.apikeys import (
    ApiKey,
    KeyStoreUnavailableError,
    presented_token,
    require_scope,
    store_from_state,
)

READ_SCOPES = frozenset({"read", "admin"})

require_admin: Callable[..., Awaitable[ApiKey]] = require_scope("admin")


async def require_read(
    request: Request, token: Annotated[str | None, Depends(presented_token)]
) -> ApiKey:
    """The request's key when it has the ``read`` or ``admin`` scope (401/403/503 otherwise)."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if not token:
        raise HTTPException(401, "missing or invalid API key", headers=unauthorized)
    try:
        key = await store_from_state(request).authenticate(token)
    except KeyStoreUnavailableError:
        raise HTTPException(
            503, "API keys cannot be checked yet", headers={"Retry-After": "5"}
        ) from None
    if key is None:
        raise HTTPException(401, "missing or invalid API key", headers=unauthorized)
    if not READ_SCOPES & {str(s) for s in key.scopes}:
        raise HTTPException(403, "this API key lacks the 'read' (or 'admin') scope")
    return key
