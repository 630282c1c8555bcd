"""``healthscore api``: run the management and read API with uvicorn."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (default: HEALTHSCORE_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default: HEALTHSCORE_API_PORT, 8080)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from healthscore.jsonlog import configure as configure_logging
    from services.api.app import create_app
    from services.api.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    # uvicorn's access log would print raw paths and query strings; request metrics cover it.
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        log_config=None,
        access_log=False,
    )
    return 0
