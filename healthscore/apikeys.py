"""API keys: generation, hashing, verification, a PostgreSQL-backed store and a FastAPI guard.

A key is a high-entropy token ``hs_<key_id>_<secret>``: ``key_id`` (12 lowercase hex characters)
is a public lookup prefix, ``secret`` 32 random bytes (URL-safe base64). The database keeps only
the SHA-256 digest of the whole token: a random 256-bit secret needs no slow password hash, and
the digest binds the secret to its key id. Verification compares digests in constant time.

Services authenticate through a :class:`KeyStore`. :class:`PostgresKeyStore` keeps every active
key in memory, reloads them in the background (every 30 s by default) and, when it meets an
unknown key id, at most once per ``miss_interval`` seconds; a request with a known key never
touches the database. A revoked key therefore keeps working until the next reload.
``HEALTHSCORE_BOOTSTRAP_API_KEY`` (any string, every scope) is accepted besides the stored keys so
a fresh installation can be used before the first ``healthscore keys create``.

Tokens and digests are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, get_args

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.db.tables.api_keys import api_keys

logger = logging.getLogger(__name__)

# ingest: send events. read: read scores, accounts and alerts (the api). admin: manage models
# (and read). The bootstrap key has every scope.
Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

TOKEN_PREFIX = "hs"
# Longer headers are not tokens of ours; refusing them early bounds the hashing work.
MAX_TOKEN_LENGTH = 512
_TOKEN_RE = re.compile(r"^hs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# A key's name doubles as the default ``source`` of its events, so it follows the same rule.
NAME_RE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")

BOOTSTRAP_KEY_ID = "bootstrap"


class KeyStoreUnavailableError(Exception):
    """The store cannot say whether a key is valid (never loaded: database unreachable)."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[Scope]
    source: str | None = None
    created_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    @property
    def default_source(self) -> str:
        """The ``source`` given to events that carry none."""
        return self.source or self.name

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class StoredKey:
    key: ApiKey
    digest: bytes


@dataclass(frozen=True)
class NewKey:
    """A freshly created key; ``token`` exists only here and is shown once."""

    key: ApiKey
    token: str


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def generate_token() -> tuple[str, str]:
    """A new ``(key_id, token)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    match = _TOKEN_RE.match(token)
    return match.group(1) if match else None


def verify(token: str, stored: StoredKey) -> bool:
    return hmac.compare_digest(digest(token), stored.digest)


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """``"ingest,admin"`` → scopes; raises ValueError naming an unknown scope."""
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes: set[Scope] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item not in SCOPES:
            raise ValueError(f"unknown scope {item!r} (known: {', '.join(SCOPES)})")
        scopes.add(item)
    if not scopes:
        raise ValueError("at least one scope is required")
    return frozenset(scopes)


class KeyStore(Protocol):
    async def authenticate(self, token: str) -> ApiKey | None:
        """The active key ``token`` belongs to, or None for an unknown, wrong or revoked token.

        Raises :class:`KeyStoreUnavailableError` when the store cannot decide (callers answer 503).
        """
        ...


class MemoryKeyStore:
    """Keys held in memory only (tests, embedding); same verification as the PostgreSQL store."""

    def __init__(self, keys: Iterable[StoredKey] = (), bootstrap_token: str | None = None) -> None:
        self._keys = {k.key.key_id: k for k in keys}
        self._bootstrap = _bootstrap(bootstrap_token)

    def add(self, name: str, scopes: Iterable[Scope], source: str | None = None) -> NewKey:
        key_id, token = generate_token()
        key = ApiKey(key_id, name, frozenset(scopes), source)
        self._keys[key_id] = StoredKey(key, digest(token))
        return NewKey(key, token)

    async def authenticate(self, token: str) -> ApiKey | None:
        return _match(token, self._bootstrap, self._keys)


def _bootstrap(token: str | None) -> StoredKey | None:
    if not token:
        return None
    key = ApiKey(BOOTSTRAP_KEY_ID, BOOTSTRAP_KEY_ID, frozenset(SCOPES))
    return StoredKey(key, digest(token))


def _match(token: str, bootstrap: StoredKey | None, keys: dict[str, StoredKey]) -> ApiKey | None:
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    if bootstrap is not None and verify(token, bootstrap):
        return bootstrap.key
    key_id = key_id_of(token)
    stored = keys.get(key_id) if key_id else None
    if stored is not None and verify(token, stored):
        return stored.key
    return None


KeyLoader = Callable[[], Awaitable[Sequence[StoredKey]]]


class CachedKeyStore:
    """Authenticates from an in-memory copy of the active keys that ``load`` returns.

    ``start()`` loads once (a failure is logged, not raised: the bootstrap key keeps working and
    other tokens get :class:`KeyStoreUnavailableError` until a load succeeds) and starts the
    periodic reload; ``close()`` stops it. An unknown key id triggers a reload at most once per
    ``miss_interval`` seconds, so a flood of random tokens costs at most one query per interval.
    """

    def __init__(
        self,
        load: KeyLoader,
        *,
        bootstrap_token: SecretStr | str | None = None,
        refresh_interval: float = 30.0,
        miss_interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        raw = (
            bootstrap_token.get_secret_value()
            if isinstance(bootstrap_token, SecretStr)
            else bootstrap_token
        )
        self._load = load
        self._bootstrap = _bootstrap(raw)
        self._refresh_interval = refresh_interval
        self._miss_interval = miss_interval
        self._monotonic = monotonic
        self._keys: dict[str, StoredKey] | None = None
        self._last_load_attempt = -float("inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._refresh_forever(), name="apikeys-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> CachedKeyStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def reload(self) -> bool:
        """Replace the cache with the loader's keys; False (and the old cache kept) on failure."""
        async with self._lock:
            self._last_load_attempt = self._monotonic()
            try:
                keys = await self._load()
            except Exception as exc:  # the database is down: keep serving the last good copy
                logger.warning(
                    "api key reload failed; keeping the cached keys",
                    extra={"error_type": type(exc).__name__, "cached": self.loaded},
                )
                return False
            self._keys = {k.key.key_id: k for k in keys}
            return True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            await self.reload()

    async def authenticate(self, token: str) -> ApiKey | None:
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        if self._bootstrap is not None and verify(token, self._bootstrap):
            return self._bootstrap.key
        key_id = key_id_of(token)
        if key_id is None:
            return None
        if self._keys is None or key_id not in self._keys:
            now = self._monotonic()
            if now - self._last_load_attempt >= self._miss_interval:
                # Claimed before awaiting the lock, so concurrent misses share one reload.
                self._last_load_attempt = now
                await self.reload()
            if self._keys is None:
                raise KeyStoreUnavailableError("API keys have not been loaded yet")
        return _match(token, None, self._keys)


class PostgresKeyRepository:
    """Creates, lists and revokes keys in the ``api_keys`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, name: str, scopes: Iterable[Scope], source: str | None = None) -> NewKey:
        """Store a new key and return its token; raises ValueError for a bad or taken name."""
        if not NAME_RE.match(name):
            raise ValueError("name: 1-64 characters of A-Z a-z 0-9 . _ : / -")
        if source is not None and not NAME_RE.match(source):
            raise ValueError("source: 1-64 characters of A-Z a-z 0-9 . _ : / -")
        scope_set = parse_scopes(scopes)
        key_id, token = generate_token()
        values = {
            "key_id": key_id,
            "name": name,
            "secret_sha256": digest(token),
            "scopes": sorted(scope_set),
            "source": source,
        }
        try:
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        api_keys.insert().values(**values).returning(api_keys.c.created_at)
                    )
                ).one()
        except IntegrityError as exc:
            raise ValueError(f"an active key named {name!r} exists already") from exc
        return NewKey(ApiKey(key_id, name, scope_set, source, row.created_at), token)

    async def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row_key(row) for row in rows]

    async def revoke(self, key_id_or_name: str) -> ApiKey | None:
        """Revoke the active key with this id or name; None when there is none."""
        table = api_keys.c
        query = (
            api_keys.update()
            .where(table.revoked_at.is_(None))
            .where(sa.or_(table.key_id == key_id_or_name, table.name == key_id_or_name))
            .values(revoked_at=sa.func.now())
            .returning(*api_keys.c)
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            if len(rows) > 1:
                # A name equal to another key's id: refuse (the transaction rolls back).
                raise ValueError(f"{key_id_or_name!r} matches more than one key; use the key id")
        return _row_key(rows[0]) if rows else None

    async def active(self) -> list[StoredKey]:
        query = sa.select(api_keys).where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [StoredKey(_row_key(row), bytes(row.secret_sha256)) for row in rows]


def _row_key(row: sa.Row[object]) -> ApiKey:
    m = row._mapping
    scopes = frozenset(s for s in m["scopes"] if s in SCOPES)
    return ApiKey(
        m["key_id"],
        m["name"],
        scopes,
        m["source"],
        m["created_at"],
        m["revoked_at"],
    )


class PostgresKeyStore(CachedKeyStore):
    """The production key store: active keys of the ``api_keys`` table, cached in memory."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        bootstrap_token: SecretStr | str | None = None,
        refresh_interval: float = 30.0,
        miss_interval: float = 5.0,
    ) -> None:
        super().__init__(
            PostgresKeyRepository(engine).active,
            bootstrap_token=bootstrap_token,
            refresh_interval=refresh_interval,
            miss_interval=miss_interval,
        )


# --- FastAPI -------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def token_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The token a request presents: ``Authorization: Bearer <token>`` and/or ``X-API-Key``.

    When both are present they must agree; two different keys count as a wrong key ("")."""
    from_bearer = None
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        from_bearer = credentials.strip() if scheme.lower() == "bearer" else ""
    if from_bearer is not None and x_api_key is not None and from_bearer != x_api_key:
        return ""
    return from_bearer if from_bearer is not None else x_api_key


async def presented_token(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> str | None:
    """The token of a request, as a dependency (documents both schemes in the OpenAPI).

    ``async`` although it awaits nothing: FastAPI runs plain ``def`` dependencies in a thread pool,
    which costs more than the whole check on every request."""
    return token_from_headers(f"Bearer {bearer.credentials}" if bearer else None, header)


def store_from_state(request: Request) -> KeyStore:
    """The key store a service put on ``app.state.key_store`` in its composition root."""
    store: KeyStore = request.app.state.key_store
    return store


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def check_token(token: str | None, scope: Scope, store: KeyStore) -> ApiKey:
    """The key ``token`` belongs to; ``HTTPException`` 401 (no or wrong key), 403 (``scope``
    missing) or 503 + ``Retry-After`` (keys cannot be checked yet)."""
    if not token:
        raise HTTPException(401, "missing or invalid API key", headers=_UNAUTHORIZED)
    try:
        key = await store.authenticate(token)
    except KeyStoreUnavailableError:
        raise HTTPException(
            503, "API keys cannot be checked yet", headers={"Retry-After": "5"}
        ) from None
    if key is None:
        raise HTTPException(401, "missing or invalid API key", headers=_UNAUTHORIZED)
    if not key.allows(scope):
        raise HTTPException(403, f"this API key lacks the {scope!r} scope")
    return key


async def authorize(request: Request, scope: Scope, store: KeyStore) -> ApiKey:
    """:func:`check_token` for a request's headers, without FastAPI's dependency machinery (for
    hot routes: resolving security dependencies cost more than the rest of an ingest request).
    Such a route declares its security in the OpenAPI itself (see :data:`OPENAPI_SECURITY`)."""
    headers = request.headers
    token = token_from_headers(headers.get("authorization"), headers.get("x-api-key"))
    return await check_token(token, scope, store)


# OpenAPI fragments for routes that call :func:`authorize` themselves.
OPENAPI_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
OPENAPI_SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "the API key"},
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def require_scope(
    scope: Scope, *, store: Callable[[Request], KeyStore] = store_from_state
) -> Callable[..., Awaitable[ApiKey]]:
    """A FastAPI dependency: the request's :class:`ApiKey`; 401 without or with a wrong key, 403
    when the key lacks ``scope``, 503 + ``Retry-After`` when keys cannot be checked yet."""

    async def dependency(
        request: Request, token: Annotated[str | None, Depends(presented_token)]
    ) -> ApiKey:
        return await check_token(token, scope, store(request))

    return dependency
