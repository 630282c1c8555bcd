"""``healthscore scorer``: run one scorer worker (a faust Worker) until SIGTERM/SIGINT.

Start several, each with its own HEALTHSCORE_SCORER_PORT (and HEALTHSCORE_SCORER_DATA_DIR on one
host): they share the partitions of the event topics through the consumer group.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, help="/healthz /readyz /metrics port (or HEALTHSCORE_SCORER_PORT)"
    )
    parser.add_argument(
        "--data-dir", help="directory for RocksDB tables (or HEALTHSCORE_SCORER_DATA_DIR)"
    )
    parser.add_argument(
        "--no-create-topics",
        action="store_true",
        help="do not create missing product topics at start (the scorer's own changelog"
        " topics are always created)",
    )


def logging_config(level: str) -> dict[str, object]:
    """Every log line of the worker (faust's and ours) as JSON (healthscore.jsonlog)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "healthscore.jsonlog.JsonFormatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def run(args: argparse.Namespace) -> int:
    import asyncio

    from healthscore.kafka_admin import ensure_topics
    from services.scorer.app import create_scorer
    from services.scorer.settings import get_settings

    settings = get_settings()
    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["http_port"] = args.port
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if overrides:
        settings = settings.model_copy(update=overrides)
    if not args.no_create_topics:
        asyncio.run(
            ensure_topics(
                settings.kafka_bootstrap_servers, settings.topics.specs(settings.partitions)
            )
        )
    scorer = create_scorer(settings)
    asyncio.run(scorer.ensure_changelog_topics())
    worker = scorer.worker(
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level),
        quiet=True,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0
