"""Time sources. The engine never reads a clock; the services ask one of these.

``HEALTHSCORE_CLOCK`` picks the clock of a process:

- ``system`` (default): wall-clock UTC.
- ``accelerated:<speed>:<sim_origin>:<wall_origin>``: simulated time that starts at ``sim_origin``
  (RFC 3339) when the wall clock reads ``wall_origin`` (Unix seconds) and runs ``speed`` times
  faster. The demo gives the simulator and the scorer the same spec, so weeks of customer
  behaviour, and the decay of quiet accounts, play out in minutes.

Tests drive time with :class:`ManualClock` instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


@dataclass
class ManualClock:
    """A clock that moves only when told to."""

    current: dt.datetime

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, delta: dt.timedelta) -> None:
        self.current += delta


@dataclass(frozen=True)
class AcceleratedClock:
    sim_origin: dt.datetime
    wall_origin: float
    speed: float

    def now(self) -> dt.datetime:
        elapsed = (time.time() - self.wall_origin) * self.speed
        return self.sim_origin + dt.timedelta(seconds=elapsed)

    def spec(self) -> str:
        return f"accelerated:{self.speed}:{self.sim_origin.isoformat()}:{self.wall_origin}"


def clock_from_spec(spec: str) -> Clock:
    """Build the clock named by a ``HEALTHSCORE_CLOCK`` value; raises ValueError when malformed."""
    if spec in ("", "system"):
        return SystemClock()
    kind, _, rest = spec.partition(":")
    if kind == "accelerated":
        speed, _, rest = rest.partition(":")
        # The origin is an RFC 3339 time that contains colons itself: split from the right.
        sim_origin, _, wall_origin = rest.rpartition(":")
        origin = dt.datetime.fromisoformat(sim_origin)
        if origin.tzinfo is None:
            raise ValueError("HEALTHSCORE_CLOCK: the simulated origin needs a UTC offset")
        return AcceleratedClock(origin, float(wall_origin), float(speed))
    raise ValueError(f"HEALTHSCORE_CLOCK: unknown clock {kind!r} (system or accelerated)")
