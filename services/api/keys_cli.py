"""``healthscore keys``: create, list and revoke API keys in the database (``DATABASE_URL``).

``keys create --name N --scopes ingest[,admin]`` prints the new key once, alone on stdout (so
``KEY=$(healthscore keys create ...)`` works); only its SHA-256 digest is stored. ``keys list``
shows ids, names, scopes and dates, never secrets. ``keys revoke ID_OR_NAME`` revokes a key;
running services stop accepting it at their next key reload (30 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from healthscore.config import CommonSettings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="database holding the keys (default: DATABASE_URL)")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="unique name; default source of its events")
    create.add_argument(
        "--scopes", default="ingest", help="comma-separated: ingest, read, admin (default: ingest)"
    )
    create.add_argument("--source", help="default `source` of events sent with this key")
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = sub.add_parser("revoke", help="revoke a key by id or name")
    revoke.add_argument("key", metavar="ID_OR_NAME")


async def _main(args: argparse.Namespace, url: str) -> int:
    from healthscore.apikeys import PostgresKeyRepository, parse_scopes
    from healthscore.db.engine import create_db_engine

    engine = create_db_engine(url)
    try:
        repo = PostgresKeyRepository(engine)
        if args.keys_command == "create":
            try:
                created = await repo.create(args.name, parse_scopes(args.scopes), args.source)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            key = created.key
            print(
                f"created key {key.key_id} ({key.name}; scopes {','.join(sorted(key.scopes))}). "
                "It is shown only now: store it in a secret manager.",
                file=sys.stderr,
            )
            print(created.token)
            return 0
        if args.keys_command == "list":
            keys = await repo.list_keys(include_revoked=args.all)
            for key in keys:
                row: dict[str, object] = {
                    "key_id": key.key_id,
                    "name": key.name,
                    "scopes": sorted(key.scopes),
                    "source": key.default_source,
                    "created_at": key.created_at.isoformat() if key.created_at else None,
                    "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                }
                if args.json:
                    print(orjson.dumps(row).decode())
                else:
                    state = f"revoked {row['revoked_at']}" if key.revoked_at else "active"
                    scopes = ",".join(sorted(key.scopes))
                    print(f"{key.key_id}  {key.name:<24} {scopes:<14} {row['created_at']}  {state}")
            return 0
        try:
            revoked = await repo.revoke(args.key)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if revoked is None:
            print(f"error: no active key with id or name {args.key!r}", file=sys.stderr)
            return 1
        print(f"revoked key {revoked.key_id} ({revoked.name})")
        return 0
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> int:
    url = args.database_url or CommonSettings().database_url
    return asyncio.run(_main(args, url))
