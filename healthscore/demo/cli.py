"""``healthscore demo``: run the whole system on simulated traffic (see
``healthscore.demo.orchestrator`` for what happens, in order).

On a terminal the demo runs until Ctrl-C with a live view; otherwise (CI, ``make demo`` piped to
a file) it runs ``--duration 60`` by default and prints progress lines. Either way it ends with a
summary; ``--summary-json PATH`` also writes it as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from rich.console import Console

from healthscore.demo.orchestrator import (
    DEFAULT_SPEED,
    Demo,
    DemoOptions,
    print_summary,
    stdout_is_terminal,
    write_summary,
)

NON_INTERACTIVE_DURATION = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Run Kafka, PostgreSQL, every service and a traffic simulator locally."
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of live demo, then a summary (default: until Ctrl-C on a terminal, "
        f"{NON_INTERACTIVE_DURATION:.0f} otherwise)",
    )
    parser.add_argument("--accounts", type=int, default=30, help="simulated accounts (>= 5)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help="simulated seconds per wall second (default: one day every 2 s)",
    )
    parser.add_argument("--rate", type=float, default=4000.0, help="maximum events/s sent")
    parser.add_argument("--history-days", type=int, default=35, help="days of pre-seeded history")
    parser.add_argument("--summary-json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")


async def _main(args: argparse.Namespace, console: Console) -> int:
    interactive = stdout_is_terminal()
    duration = args.duration
    if duration is None and not interactive:
        duration = NON_INTERACTIVE_DURATION
    options = DemoOptions(
        duration=duration,
        accounts=max(5, args.accounts),
        seed=args.seed,
        speed=args.speed,
        rate=args.rate,
        history_days=args.history_days,
        summary_json=args.summary_json,
        interactive=interactive,
        keep_logs=args.keep_logs,
    )
    demo = Demo(options, console)
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        # During the live phase the first Ctrl-C ends it with a summary; before it (or on a
        # second Ctrl-C) the run is cancelled, and teardown still runs in `finally` blocks.
        if demo.phase == "live" and not demo.stop.is_set():
            demo.stop.set()
        elif main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        summary = await demo.run()
    except asyncio.CancelledError:
        console.print("interrupted; everything stopped and removed")
        return 130
    except Exception as exc:
        demo.failed = True
        console.print(f"[bold red]demo failed:[/bold red] {exc}", highlight=False)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    print_summary(console, summary)
    if options.summary_json is not None:
        write_summary(options.summary_json, summary)
        console.print(f"summary written to {options.summary_json}")
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Off a terminal rich would wrap at 80 columns; the summary's tables need more.
    console = Console() if stdout_is_terminal() else Console(width=140)
    try:
        return asyncio.run(_main(args, console))
    except KeyboardInterrupt:
        return 130
