"""``healthscore local``: run Kafka and PostgreSQL on this machine until interrupted.

Prints (and with ``--env-file`` writes) the ``export`` lines that point the services and the test
suite at the stack. Both servers and their data are removed on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from healthscore.local.kafka import KAFKA_VERSION, LocalKafka, jars_cached
from healthscore.local.postgres import LocalPostgres

log = logging.getLogger("healthscore.local")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        help="write the export lines here once both servers are ready (removed on exit)",
    )
    parser.add_argument(
        "--database",
        default="healthscore",
        help="database to create and migrate for DATABASE_URL (default: healthscore)",
    )
    parser.add_argument("--kafka-version", default=KAFKA_VERSION, help=argparse.SUPPRESS)


def env_lines(bootstrap: str, database_url: str) -> str:
    return f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nexport DATABASE_URL={database_url}\n"


def write_atomically(path: Path, text: str) -> None:
    """Readers polling for the file never see it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


async def _timed(what: str, start: Coroutine[Any, Any, None]) -> float:
    began = time.monotonic()
    await start
    elapsed = time.monotonic() - began
    log.info("%s ready in %.1fs", what, elapsed)
    return elapsed


async def serve(args: argparse.Namespace) -> int:
    from healthscore.db.engine import create_database
    from healthscore.db.migrations import migrate

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    kafka = LocalKafka(version=args.kafka_version)
    postgres = LocalPostgres()
    cold = not jars_cached(args.kafka_version)
    began = time.monotonic()
    log.info(
        "starting Kafka %s (%s) and PostgreSQL",
        args.kafka_version,
        "cold: resolving jars" if cold else "warm: jars cached",
    )
    written: str | None = None

    async def start_both() -> None:
        # A TaskGroup: if one server fails to start, the other's start is cancelled.
        async with asyncio.TaskGroup() as group:
            group.create_task(_timed("Kafka", kafka.start()))
            group.create_task(_timed("PostgreSQL", postgres.start()))

    try:
        starting = asyncio.ensure_future(start_both())
        waiting = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("interrupted while starting")
            starting.cancel()
            await asyncio.wait({starting})
            return 130
        waiting.cancel()
        starting.result()
        db_url = await create_database(postgres.server_url, args.database)
        await migrate(db_url)
        total = time.monotonic() - began
        log.info(
            "stack ready in %.1fs (%s start; Kafka data %s)",
            total,
            "cold" if cold else "warm",
            kafka.data_dir,
        )
        text = env_lines(kafka.bootstrap_servers, db_url)
        sys.stdout.write(text)
        sys.stdout.flush()
        if args.env_file is not None:
            write_atomically(args.env_file, text)
            written = text
            log.info("wrote %s", args.env_file)
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        if args.env_file is not None and written is not None:
            try:
                if args.env_file.read_text() == written:
                    args.env_file.unlink()
            except FileNotFoundError:
                pass
        await asyncio.gather(kafka.stop(), postgres.stop(), return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return asyncio.run(serve(args))
    except ExceptionGroup as group:
        # Start failures carry the server's log tail: show them, not a nested traceback.
        for exc in group.exceptions:
            log.error("%s", exc)
        return 1
