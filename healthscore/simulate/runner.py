"""The simulation loop: follow a clock, ask the generator for the events that became due, and
hand them to the sender in paced batches.

The first pass sends the whole pre-seeded history (from the timeline's start up to the clock's
present) as fast as the rate allows; after that each pass sends what became due since the last
one, so the events keep pace with (accelerated) simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from healthscore.clock import Clock
from healthscore.simulate.sender import IngestSender, RatePacer
from healthscore.simulate.traffic import SimEvent, TrafficGenerator

# How often the loop looks for newly due events once it has caught up with the clock.
_POLL_SECONDS = 0.2

OnSent = Callable[[Sequence[SimEvent], float], None]


class Simulation:
    def __init__(
        self,
        generator: TrafficGenerator,
        sender: IngestSender,
        clock: Clock,
        *,
        rate: float,
        batch_size: int = 500,
        on_sent: OnSent | None = None,
    ) -> None:
        self.generator = generator
        self.sender = sender
        self.clock = clock
        self.pacer = RatePacer(rate, burst=max(rate, float(batch_size)))
        self.batch_size = batch_size
        self.on_sent = on_sent
        self.cursor = generator.timeline.start
        self.history_sent = asyncio.Event()
        self.history_events = 0
        self.started = time.monotonic()

    def sim_lag_seconds(self) -> float:
        """How far (in simulated seconds) the events sent trail the clock."""
        return max(0.0, (self.clock.now() - self.cursor).total_seconds())

    async def run(self, stop: asyncio.Event, duration: float | None = None) -> None:
        """Send until ``stop`` is set or ``duration`` wall seconds have passed."""
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            now = self.clock.now()
            due = self.generator.events_between(self.cursor, now)
            for start in range(0, len(due), self.batch_size):
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    return
                chunk = due[start : start + self.batch_size]
                await self.pacer.acquire(len(chunk))
                sent_at = time.time()
                await self.sender.send([e.body for e in chunk])
                # The cursor moves batch by batch so the lag it reports is true mid-pass.
                self.cursor = max(self.cursor, chunk[-1].occurred_at)
                if self.on_sent is not None:
                    self.on_sent(chunk, sent_at)
            self.cursor = max(self.cursor, now)
            if not self.history_sent.is_set():
                self.history_events = len(due)
                self.history_sent.set()
            if not due:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _POLL_SECONDS)
