"""Choosing Debian's PostgreSQL binaries, and LocalPostgres' URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthscore.local.postgres import LocalPostgres, find_postgres_bin_dir


def _install(root: Path, version: str, *, initdb: bool = True) -> None:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    if initdb:
        (bin_dir / "initdb").write_text("")


def test_picks_the_highest_version_numerically(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "13"):
        _install(tmp_path, version)
    _install(tmp_path, "17", initdb=False)  # client-only package: no server binaries

    assert find_postgres_bin_dir(tmp_path) == tmp_path / "16" / "bin"


def test_nothing_installed(tmp_path: Path) -> None:
    assert find_postgres_bin_dir(tmp_path) is None
    assert find_postgres_bin_dir(tmp_path / "missing") is None


def test_urls_need_a_started_server() -> None:
    postgres = LocalPostgres()

    with pytest.raises(RuntimeError, match="not been started"):
        _ = postgres.server_url
    postgres.port = 5555
    assert postgres.server_url == "postgresql+asyncpg://postgres@127.0.0.1:5555/postgres"
    assert postgres.url("hs_x") == "postgresql+asyncpg://postgres@127.0.0.1:5555/hs_x"
