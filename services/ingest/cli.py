"""``healthscore ingest``: run the ingest HTTP service (uvicorn)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", help="address to listen on (default 0.0.0.0, or HEALTHSCORE_INGEST_HOST)"
    )
    parser.add_argument("--port", type=int, help="port (default 8000, or HEALTHSCORE_INGEST_PORT)")
    parser.add_argument(
        "--log-level", help="debug, info, warning, error (default: HEALTHSCORE_LOG_LEVEL, info)"
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from healthscore import jsonlog
    from services.ingest.app import create_app
    from services.ingest.settings import get_settings

    settings = get_settings()
    log_level = (args.log_level or settings.log_level).lower()
    jsonlog.configure(log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
        log_config=None,  # jsonlog already routes uvicorn's loggers
        log_level=log_level,
        # No access log: one line per request at ingest rates is noise; /metrics counts them.
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=15,
    )
    uvicorn.Server(config).run()
    return 0
