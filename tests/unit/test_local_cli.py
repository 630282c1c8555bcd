"""``healthscore local`` output and env file, and the database helpers' URL handling."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from healthscore.db.engine import _checked_name, database_url
from healthscore.local.cli import configure, env_lines, write_atomically


def test_env_lines_are_shell_exports() -> None:
    text = env_lines("127.0.0.1:1234", "postgresql+asyncpg://postgres@127.0.0.1:5/healthscore")

    assert text == (
        "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1234\n"
        "export DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5/healthscore\n"
    )


def test_env_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "stack.env"

    write_atomically(target, "one\n")
    write_atomically(target, "two\n")

    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["stack.env"]


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)

    args = parser.parse_args(["--env-file", "/tmp/x.env"])

    assert args.env_file == Path("/tmp/x.env")
    assert args.database == "healthscore"


def test_database_url_keeps_credentials() -> None:
    url = database_url("postgresql+asyncpg://u:p%40ss@h:5432/postgres", "hs_1")

    assert url == "postgresql+asyncpg://u:p%40ss@h:5432/hs_1"


@pytest.mark.parametrize("name", ["", "Hs", "1abc", "a-b", 'x"; DROP', "a" * 64])
def test_database_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        _checked_name(name)
