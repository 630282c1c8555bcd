"""``healthscore alerts``: run the alerts service (consumer, delivery workers, /healthz /readyz
/metrics on a port), or ``--check`` an alerts file and exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.alerts.settings import AlertsSettings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alerts-file", help="rules/destinations/routes file (default: HEALTHSCORE_ALERTS_FILE)"
    )
    parser.add_argument("--port", type=int, help="HTTP port (default: HEALTHSCORE_ALERTS_PORT)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the alerts file (and its secrets and URLs), print the routes and exit",
    )


def _settings(args: argparse.Namespace) -> AlertsSettings:
    from services.alerts.settings import get_settings

    settings = get_settings()
    overrides: dict[str, object] = {}
    if args.alerts_file:
        overrides["alerts_file"] = args.alerts_file
    if args.port is not None:
        overrides["port"] = args.port
    return settings.model_copy(update=overrides) if overrides else settings


async def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from services.alerts.app import create_http_app, create_service

    settings = _settings(args)
    service = create_service(settings)
    if args.check:
        await service.check_destinations()
        for rule in service.config.rules:
            names = service.config.destinations_for(rule.rule_name, rule.type, None, None)
            print(f"{rule.rule_name} ({rule.type}): health.alerts {' '.join(names)}".rstrip())
        return 0
    await service.start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_http_app(service),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server_task = asyncio.create_task(server.serve())
    try:
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({server_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await server_task
        await service.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    from healthscore import jsonlog
    from services.alerts.config import InvalidConfigError
    from services.alerts.settings import get_settings

    jsonlog.configure(get_settings().log_level)
    try:
        return asyncio.run(_serve(args))
    except InvalidConfigError as exc:
        print(f"invalid alerts configuration:\n{exc}", file=sys.stderr)
        return 2
