"""``healthscore simulate``: send simulated customer traffic to an ingest URL.

The simulated population first sends ``--history-days`` of pre-seeded history (as fast as
``--rate`` allows), then follows the clock: with ``--speed 1`` in real time, with ``--speed N``
N times faster. A scorer must read the same clock, so with ``--speed`` other than 1 the command
prints the ``HEALTHSCORE_CLOCK`` value to give the scorer (or pass ``--clock`` / set
``HEALTHSCORE_CLOCK`` to follow a clock the scorer already uses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time

from healthscore.clock import AcceleratedClock, Clock, clock_from_spec
from healthscore.simulate.runner import Simulation
from healthscore.simulate.sender import IngestRefusedError, IngestSender
from healthscore.simulate.traffic import Timeline, TrafficGenerator


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="ingest base URL")
    parser.add_argument(
        "--api-key",
        default=None,
        help="ingest API key (default: $HEALTHSCORE_API_KEY or $HEALTHSCORE_BOOTSTRAP_API_KEY)",
    )
    parser.add_argument("--accounts", type=int, default=30, help="number of simulated accounts")
    parser.add_argument("--rate", type=float, default=3000.0, help="maximum events/s sent")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="time acceleration (simulated s per wall s)"
    )
    parser.add_argument(
        "--clock",
        default=None,
        help="a HEALTHSCORE_CLOCK spec to follow (default: $HEALTHSCORE_CLOCK, else --speed)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="wall seconds to run (default: until Ctrl-C)"
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same events")
    parser.add_argument(
        "--history-days", type=int, default=35, help="days of history sent before the live part"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="events per request (<=1000)")


def _clock(args: argparse.Namespace) -> Clock:
    spec = args.clock if args.clock is not None else os.environ.get("HEALTHSCORE_CLOCK", "")
    if spec:
        return clock_from_spec(spec)
    if args.speed == 1.0:
        return clock_from_spec("system")
    now = time.time()
    clock = AcceleratedClock(clock_from_spec("system").now(), now, args.speed)
    print(f"export HEALTHSCORE_CLOCK={clock.spec()}  # give the scorer this clock", flush=True)
    return clock


async def _report(simulation: Simulation, stop: asyncio.Event, every: float = 5.0) -> None:
    last = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        stats = simulation.sender.stats
        print(
            f"sent {stats.sent} events ({(stats.sent - last) / every:.0f}/s), "
            f"accepted {stats.accepted}, rejected {stats.rejected}, "
            f"throttled {stats.throttled}, unavailable {stats.unavailable}, "
            f"simulated time {simulation.cursor:%Y-%m-%d %H:%M}",
            flush=True,
        )
        last = stats.sent


async def simulate(args: argparse.Namespace) -> int:
    api_key = (
        args.api_key
        or os.environ.get("HEALTHSCORE_API_KEY")
        or os.environ.get("HEALTHSCORE_BOOTSTRAP_API_KEY")
    )
    if not api_key:
        print("healthscore simulate: give --api-key or set HEALTHSCORE_API_KEY", file=sys.stderr)
        return 2
    clock = _clock(args)
    timeline = Timeline.ending_at(clock.now(), args.history_days)
    generator = TrafficGenerator.create(args.accounts, args.seed, timeline)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with IngestSender(args.url, api_key) as sender:
        simulation = Simulation(
            generator, sender, clock, rate=args.rate, batch_size=min(1000, args.batch_size)
        )
        reporter = asyncio.create_task(_report(simulation, stop))
        try:
            await simulation.run(stop, args.duration)
        except IngestRefusedError as exc:
            print(f"healthscore simulate: {exc}", file=sys.stderr)
            return 1
        finally:
            stop.set()
            await reporter
    stats = sender.stats
    print(
        f"done: {stats.sent} events sent, {stats.accepted} accepted, {stats.rejected} rejected",
        flush=True,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(simulate(args))
