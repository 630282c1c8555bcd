"""``healthscore migrate``: upgrade the database named by ``DATABASE_URL`` to every head."""

from __future__ import annotations

import argparse
import asyncio

from healthscore.config import CommonSettings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="database to migrate (default: DATABASE_URL)",
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the database first when it does not exist",
    )
    parser.add_argument("--target", default="heads", help="revision to upgrade to (default: heads)")


async def _main(url: str, *, create: bool, target: str) -> None:
    from sqlalchemy import make_url

    from healthscore.db.engine import create_database, database_exists, database_url
    from healthscore.db.migrations import migrate

    if create:
        name = make_url(url).database
        if not name:
            raise SystemExit("DATABASE_URL names no database")
        server = database_url(url, "postgres")
        if not await database_exists(server, name):
            await create_database(server, name)
            print(f"created database {name}")
    await migrate(url, target)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    url = args.database_url or CommonSettings().database_url
    asyncio.run(_main(url, create=args.create, target=args.target))
    print(f"migrated {make_url(url).render_as_string(hide_password=True)} to {args.target}")
    return 0
