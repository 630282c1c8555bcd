"""``healthscore keys`` as a process against a real database: the secret is printed once and only
its digest is stored."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

import orjson
import pytest
import sqlalchemy as sa

from healthscore.apikeys import PostgresKeyStore
from healthscore.db.engine import create_db_engine
from healthscore.db.tables.api_keys import api_keys

pytestmark = pytest.mark.integration


async def healthscore(*args: str, database_url: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "healthscore.cli", "keys", "--database-url", database_url, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_create_list_revoke(database_url: str) -> None:
    code, out, err = await healthscore(
        "create", "--name", "billing-sync", "--scopes", "ingest,admin", database_url=database_url
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("hs_")
    assert token not in err
    assert "shown only now" in err

    duplicate = await healthscore("create", "--name", "billing-sync", database_url=database_url)
    assert duplicate[0] == 2
    assert "exists already" in duplicate[2]
    bad_scope = await healthscore(
        "create", "--name", "x", "--scopes", "root", database_url=database_url
    )
    assert bad_scope[0] == 2

    code, out, _ = await healthscore("list", "--json", database_url=database_url)
    assert code == 0
    [row] = [orjson.loads(line) for line in out.splitlines()]
    assert row["name"] == "billing-sync"
    assert row["scopes"] == ["admin", "ingest"]
    assert token not in out

    engine = create_db_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.select(api_keys))).one()
        assert bytes(stored.secret_sha256) == hashlib.sha256(token.encode()).digest()
        assert all(token not in str(value) for value in stored)

        store = PostgresKeyStore(engine)
        async with store:
            key = await store.authenticate(token)
            assert key is not None
            assert key.scopes == {"ingest", "admin"}  # as created

            code, out, _ = await healthscore("revoke", "billing-sync", database_url=database_url)
            assert code == 0
            assert "revoked" in out
            assert await store.reload()
            assert await store.authenticate(token) is None
    finally:
        await engine.dispose()

    code, out, _ = await healthscore("list", database_url=database_url)
    assert code == 0
    assert out == ""
    code, out, _ = await healthscore("list", "--all", database_url=database_url)
    assert "revoked" in out
    missing = await healthscore("revoke", "billing-sync", database_url=database_url)
    assert missing[0] == 1
