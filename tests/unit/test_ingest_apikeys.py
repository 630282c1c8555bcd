"""healthscore.apikeys: tokens, digests and the cached key store (no database: a loader fake)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from pydantic import SecretStr

from healthscore.apikeys import (
    SCOPES,
    ApiKey,
    CachedKeyStore,
    KeyStoreUnavailableError,
    StoredKey,
    digest,
    generate_token,
    key_id_of,
    parse_scopes,
    token_from_headers,
    verify,
)


def stored(name: str, scopes: tuple[str, ...] = ("ingest",)) -> tuple[StoredKey, str]:
    key_id, token = generate_token()
    key = ApiKey(key_id, name, parse_scopes(scopes))
    return StoredKey(key, digest(token)), token


class Loader:
    """What the database would return; counts calls, can fail like a database that is down."""

    def __init__(self, keys: list[StoredKey]) -> None:
        self.keys = keys
        self.calls = 0
        self.down = False
        self.served_keys = asyncio.Event()

    async def __call__(self) -> list[StoredKey]:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("database down (test)")
        if self.keys:
            self.served_keys.set()
        return list(self.keys)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_random_well_formed_and_hashed() -> None:
    key_id, token = generate_token()
    assert token.startswith(f"hs_{key_id}_")
    assert key_id_of(token) == key_id
    assert len({generate_token()[1] for _ in range(100)}) == 100
    assert digest(token) == hashlib.sha256(token.encode()).digest()
    key = StoredKey(ApiKey(key_id, "n", frozenset({"ingest"})), digest(token))
    assert verify(token, key)
    assert not verify(token + "x", key)
    for bad in ("", "hs_", f"hs_{key_id}", "x" * 10_000, f"hs_{key_id.upper()}_{'a' * 43}"):
        assert key_id_of(bad) is None


def test_scopes_parse_strictly() -> None:
    assert parse_scopes("ingest, read, admin") == frozenset(SCOPES)
    assert parse_scopes(["admin"]) == frozenset({"admin"})
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes("ingest,root")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes(" , ")


async def test_known_keys_never_hit_the_loader_again() -> None:
    key, token = stored("crm")
    loader = Loader([key])
    store = CachedKeyStore(loader, monotonic=Clock())
    async with store:
        for _ in range(100):
            found = await store.authenticate(token)
            assert found is not None
            assert found.name == "crm"
        assert loader.calls == 1


async def test_unknown_keys_reload_at_most_once_per_interval() -> None:
    clock = Clock()
    key, token = stored("crm")
    loader = Loader([])
    store = CachedKeyStore(loader, miss_interval=5.0, monotonic=clock)
    async with store:
        clock.now = 10.0
        loader.keys = [key]  # created after the store loaded
        assert await store.authenticate(token) is not None
        assert loader.calls == 2
        _, unknown = stored("nobody")
        clock.now = 11.0
        results = await asyncio.gather(*(store.authenticate(unknown) for _ in range(50)))
        assert results == [None] * 50
        assert loader.calls == 2  # within 5 s of the last reload: no query at all
        clock.now = 20.0
        assert (
            await asyncio.gather(*(store.authenticate(unknown) for _ in range(50))) == [None] * 50
        )
        assert loader.calls == 3  # concurrent misses share one reload


async def test_revoked_keys_go_away_at_the_next_reload() -> None:
    key, token = stored("crm")
    loader = Loader([key])
    store = CachedKeyStore(loader, monotonic=Clock())
    async with store:
        assert await store.authenticate(token) is not None
        loader.keys = []
        assert await store.reload()
        assert await store.authenticate(token) is None


async def test_a_failed_reload_keeps_the_cached_keys() -> None:
    key, token = stored("crm")
    loader = Loader([key])
    store = CachedKeyStore(loader, monotonic=Clock())
    async with store:
        loader.down = True
        assert not await store.reload()
        assert await store.authenticate(token) is not None


async def test_never_loaded_is_unavailable_except_for_the_bootstrap_key() -> None:
    _, token = stored("crm")
    loader = Loader([])
    loader.down = True
    store = CachedKeyStore(loader, bootstrap_token=SecretStr("boot-secret"), monotonic=Clock())
    async with store:
        assert not store.loaded
        with pytest.raises(KeyStoreUnavailableError):
            await store.authenticate(token)
        boot = await store.authenticate("boot-secret")
        assert boot is not None
        assert boot.scopes == frozenset(SCOPES)
        assert await store.authenticate("not-a-token") is None  # malformed: no lookup needed


async def test_background_refresh_picks_up_new_keys() -> None:
    key, token = stored("crm")
    loader = Loader([])
    store = CachedKeyStore(loader, refresh_interval=0.01, miss_interval=1e9, monotonic=Clock())
    async with store:
        loader.keys = [key]
        await asyncio.wait_for(loader.served_keys.wait(), timeout=5)
        assert await store.authenticate(token) is not None


def test_token_from_headers() -> None:
    assert token_from_headers("Bearer abc", None) == "abc"
    assert token_from_headers("bearer  abc ", None) == "abc"
    assert token_from_headers(None, "abc") == "abc"
    assert token_from_headers("Bearer abc", "abc") == "abc"
    assert token_from_headers("Bearer abc", "xyz") == ""  # two different keys: wrong key
    assert token_from_headers("Basic dXNlcjpwdw==", None) == ""
    assert token_from_headers(None, None) is None
