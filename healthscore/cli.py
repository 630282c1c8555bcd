"""The healthscore command line: one entry point that starts each service and the local stack.

Each subcommand lives in the module that owns it and exposes ``configure(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``healthscore --help``
stays fast and one service's dependencies never load in another's process.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("services.ingest.cli", "run the ingest HTTP service"),
    "scorer": ("services.scorer.cli", "run a scorer worker (faust-streaming)"),
    "alerts": ("services.alerts.cli", "run the alerts service"),
    "api": ("services.api.cli", "run the management and read API"),
    "keys": ("services.api.keys_cli", "create, list and revoke API keys"),
    "migrate": ("healthscore.db.cli", "apply database migrations"),
    "topics": ("healthscore.kafka_admin", "create the Kafka topics"),
    "local": ("healthscore.local.cli", "run Kafka and PostgreSQL locally, without Docker"),
    "simulate": ("healthscore.simulate.cli", "send simulated customer traffic to an ingest URL"),
    "demo": ("healthscore.demo.cli", "run the whole system on simulated traffic"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="healthscore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parsers = {name: sub.add_parser(name, help=text) for name, (_, text) in COMMANDS.items()}
    return parser, parsers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, parsers = build_parser()
    name = next((a for a in argv if not a.startswith("-")), None)
    if name in COMMANDS:
        module = importlib.import_module(COMMANDS[name][0])
        module.configure(parsers[name])
        args = parser.parse_args(argv)
        return int(module.run(args))
    parser.parse_args(argv)  # prints usage or help and exits
    return 2


if __name__ == "__main__":
    sys.exit(main())
