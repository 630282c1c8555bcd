"""The pure part of the simulator: a population's event stream as a function of simulated time.

``TrafficGenerator.events_between(t0, t1)`` returns every event whose ``occurred_at`` falls in
``[t0, t1)``, sorted by time then event id. Each account's events for one simulated day come from
a random generator seeded by ``(seed, account, day, stream)``, so the stream is a pure function of
the seed, the population and the timeline: it does not depend on how a caller slices time into
intervals, nor on the wall clock. Events that follow from an earlier day (a ticket resolved days
after it opened, an invoice paid or failed after it was issued) are regenerated from their origin
day's seed, so no state is carried from one call to the next.

Nothing here reads a clock or touches the network; the sender (``healthscore.simulate.sender``)
delivers what this module produces.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from healthscore.simulate.personas import DayBehaviour, Tone, behaviour
from healthscore.simulate.population import SimAccount, build_population

DAY = dt.timedelta(days=1)
# Derived events land at most this many days after their origin day (invoice payments).
_LOOKBACK_DAYS = 30
_FEATURES = ("dashboards", "reports", "exports", "automations", "integrations", "alerts")
_TICKET_CATEGORIES = ("how_to", "bug", "billing", "integration", "performance")

_TEXTS: dict[Tone, tuple[str, ...]] = {
    "positive": (
        "Thanks a lot, the new dashboards are great and the team loves them.",
        "Great support as always, this really helped us. Happy to renew.",
        "We are excited to roll this out to two more teams, excellent work.",
        "Really appreciate the quick help, everything works perfectly now.",
    ),
    "neutral": (
        "Could you send the invoice for last month to our finance team?",
        "How do I export the quarterly report as a spreadsheet?",
        "We have a question about adding single sign-on for our users.",
        "Please schedule the quarterly review for next week.",
    ),
    "negative": (
        "This is broken again and nobody has answered. Very frustrated and disappointed.",
        "The product is too slow and unreliable, we are considering cancelling our contract.",
        "Terrible experience, the outage hurt our business. This is unacceptable.",
        "We are unhappy with the support and will not renew unless this is fixed.",
    ),
}
_SUBJECTS: dict[Tone, tuple[str, ...]] = {
    "positive": ("Thank you!", "Great quarter", "Expansion plans"),
    "neutral": ("Question", "Invoice request", "Quarterly review"),
    "negative": ("Urgent: still broken", "Unhappy with the service", "Contract concerns"),
}


class SimEvent(NamedTuple):
    occurred_at: dt.datetime
    event_id: str
    body: dict[str, Any]  # the JSON body of the event, as POSTed to /v1/events


# ``x`` of every day while no story has begun: far before any pivot.
_BEFORE_STORY = -1e6


@dataclass(frozen=True)
class Timeline:
    """Simulated time. Day 0 begins at ``start`` (UTC midnight). ``anchor`` is the end of the
    pre-seeded history (renewal dates and the creation of onboarding accounts are relative to
    it). ``pivot`` is the moment the personas' stories begin; ``None`` while they have not (every
    account keeps its ordinary behaviour), so a caller can send the history first and begin the
    stories once whoever watches them is ready (see ``TrafficGenerator.begin_story``)."""

    start: dt.datetime
    anchor: dt.datetime
    pivot: dt.datetime | None

    @classmethod
    def ending_at(cls, anchor: dt.datetime, history_days: int, *, story: bool = True) -> Timeline:
        """A timeline whose history covers ``history_days`` before ``anchor``; the stories
        begin at ``anchor`` when ``story``, else when ``begin_story`` says."""
        if anchor.tzinfo is None:
            raise ValueError("the anchor needs a UTC offset")
        anchor = anchor.astimezone(dt.UTC)
        midnight = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(midnight - history_days * DAY, anchor, anchor if story else None)

    @property
    def history_days(self) -> int:
        return (self.anchor - self.start) // DAY

    def day_of(self, t: dt.datetime) -> int:
        return math.floor((t - self.start) / DAY)

    def day_start(self, day: int) -> dt.datetime:
        return self.start + day * DAY

    def days_after_pivot(self, day: int) -> float:
        """``x`` of the personas for a day: days from the pivot to the day's midpoint."""
        if self.pivot is None:
            return _BEFORE_STORY
        return (self.day_start(day) + DAY / 2 - self.pivot) / DAY


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


class TrafficGenerator:
    """The deterministic event stream of a simulated population."""

    def __init__(self, accounts: tuple[SimAccount, ...], timeline: Timeline, seed: int) -> None:
        self.accounts = accounts
        self.timeline = timeline
        self.seed = seed
        self._day_events = lru_cache(maxsize=max(64, 4 * len(accounts)))(self._compute_day)

    def begin_story(self, pivot: dt.datetime) -> None:
        """Begin the personas' stories at ``pivot`` (events before it are unaffected except for
        onboarding accounts, whose activity tapers off in the days before the pivot)."""
        self.timeline = dataclasses.replace(self.timeline, pivot=pivot.astimezone(dt.UTC))
        self._day_events.cache_clear()

    @classmethod
    def create(cls, count: int, seed: int, timeline: Timeline) -> TrafficGenerator:
        return cls(build_population(count, seed, timeline.history_days), timeline, seed)

    def events_between(self, t0: dt.datetime, t1: dt.datetime) -> list[SimEvent]:
        """Every event with ``t0 <= occurred_at < t1``, sorted by time then id."""
        if t1 <= t0:
            return []
        first, last = self.timeline.day_of(t0), self.timeline.day_of(t1 - dt.timedelta.resolution)
        out = [
            event
            for index in range(len(self.accounts))
            for day in range(max(first, 0), last + 1)
            for event in self._day_events(index, day)
            if t0 <= event.occurred_at < t1
        ]
        out.sort(key=lambda e: (e.occurred_at, e.event_id))
        return out

    # -- one account, one day ----------------------------------------------------------------

    def _rng(self, account: SimAccount, day: int, stream: str) -> random.Random:
        return random.Random(f"{self.seed}:{account.account_id}:{day}:{stream}")

    def _at(self, day: int, seconds: float) -> dt.datetime:
        return self.timeline.day_start(day) + dt.timedelta(seconds=int(seconds))

    def _compute_day(self, index: int, day: int) -> tuple[SimEvent, ...]:
        account = self.accounts[index]
        if day < account.created_day:
            return ()
        b = behaviour(account.persona, self.timeline.days_after_pivot(day))
        events: list[SimEvent] = []
        if day == account.created_day:
            events.append(self._profile(account, day))
        events += self._usage(account, day, b)
        for origin in range(max(account.created_day, day - _LOOKBACK_DAYS), day + 1):
            events += self._tickets(account, origin, day)
            events += self._invoice(account, origin, day)
        events += self._emails(account, day, b)
        events += self._feedback(account, day, b)
        return tuple(events)

    def _event(
        self,
        account: SimAccount,
        event_id: str,
        kind: str,
        at: dt.datetime,
        payload: dict[str, Any],
    ) -> SimEvent:
        body = {
            "event_id": event_id,
            "account_id": account.account_id,
            "type": kind,
            "occurred_at": _iso(at),
            "payload": payload,
        }
        return SimEvent(at, event_id, body)

    def _profile(self, account: SimAccount, day: int) -> SimEvent:
        payload = {
            "name": account.name,
            "lifecycle_stage": account.lifecycle_stage,
            "segment": account.segment,
            "licenses": account.licenses,
            "arr_cents": account.arr_cents,
            "renewal_date": account.renewal_date(self.timeline.anchor).isoformat(),
            "owner": account.owner,
        }
        return self._event(
            account, f"{account.account_id}-profile", "account", self._at(day, 60), payload
        )

    def _usage(self, account: SimAccount, day: int, b: DayBehaviour) -> list[SimEvent]:
        rng = self._rng(account, day, "usage")
        weekend = self.timeline.day_start(day).weekday() >= 5
        # The first ``active_share`` of the user pool are engaged (so seat utilisation tracks
        # the persona); an engaged user logs in every other working day or so.
        engaged = round(b.active_share * account.users)
        login_chance = 0.1 if weekend else 0.5
        out = []
        for user in range(account.users):
            if user >= engaged or rng.random() >= login_chance:
                continue
            user_id = f"{account.account_id}-u{user:03d}"
            login_at = rng.uniform(7 * 3600, 18 * 3600)
            out.append(
                self._event(
                    account,
                    f"{user_id}-d{day}-login",
                    "usage",
                    self._at(day, login_at),
                    {"metric": "login", "user_id": user_id},
                )
            )
            for n in range(_poisson(rng, b.features_per_login)):
                out.append(
                    self._event(
                        account,
                        f"{user_id}-d{day}-f{n}",
                        "usage",
                        self._at(day, login_at + rng.uniform(60, 4 * 3600)),
                        {
                            "metric": "feature_used",
                            "feature": rng.choice(_FEATURES),
                            "user_id": user_id,
                        },
                    )
                )
        calls = int(b.api_calls * (0.4 if weekend else 1.0) * rng.uniform(0.8, 1.2))
        if calls > 0:
            out.append(
                self._event(
                    account,
                    f"{account.account_id}-d{day}-api",
                    "usage",
                    self._at(day, 23 * 3600 + 1800),
                    {"metric": "api_call", "quantity": float(calls)},
                )
            )
        return out

    def _tickets(self, account: SimAccount, origin: int, day: int) -> Iterator[SimEvent]:
        """Events on ``day`` of the tickets opened on ``origin``."""
        if day - origin > 8:  # tickets resolve within a week
            return
        b = behaviour(account.persona, self.timeline.days_after_pivot(origin))
        rng = self._rng(account, origin, "tickets")
        for n in range(_poisson(rng, b.ticket_rate)):
            urgent = rng.random() < b.urgent_share
            priority = rng.choice(("high", "urgent")) if urgent else rng.choice(("low", "normal"))
            opened = rng.uniform(8 * 3600, 17 * 3600)
            resolve = rng.randint(*b.resolve_days) if b.resolve_days else None
            csat = rng.randint(*b.csat)
            tone: Tone = "negative" if urgent or b.email_tone == "negative" else "neutral"
            text = rng.choice(_TEXTS[tone])
            first_response = int(rng.uniform(600, 14_400 if urgent else 7_200))
            resolved = opened + 3600 if resolve == 0 else rng.uniform(8 * 3600, 17 * 3600)
            ticket_id = f"{account.account_id}-T{origin}-{n}"
            base: dict[str, Any] = {"ticket_id": ticket_id, "priority": priority}
            if origin == day:
                payload = {
                    **base,
                    "status": "opened",
                    "category": rng.choice(_TICKET_CATEGORIES),
                    "text": text,
                }
                yield self._event(
                    account, f"{ticket_id}-opened", "ticket", self._at(day, opened), payload
                )
            if resolve is not None and origin + resolve == day:
                payload = {
                    **base,
                    "status": "resolved",
                    "csat": csat,
                    "first_response_seconds": first_response,
                }
                yield self._event(
                    account, f"{ticket_id}-resolved", "ticket", self._at(day, resolved), payload
                )

    def _invoice(self, account: SimAccount, origin: int, day: int) -> Iterator[SimEvent]:
        """Events on ``day`` of the invoice issued on ``origin`` (one per billing period)."""
        if (origin - account.billing_day) % account.billing_period != 0:
            return
        b = behaviour(account.persona, self.timeline.days_after_pivot(origin))
        rng = self._rng(account, origin, "invoice")
        invoice_id = f"{account.account_id}-INV{origin}"
        due_day = origin + 14
        base: dict[str, Any] = {
            "invoice_id": invoice_id,
            "amount_cents": account.arr_cents // 12,
            "currency": "USD",
            "due_at": _iso(self._at(due_day, 0)),
        }
        steps: list[tuple[int, str]] = [(origin, "issued")]
        if b.payment == "on_time":
            steps.append((origin + rng.randint(1, 10), "paid"))
        elif b.payment == "late":
            steps += [(due_day + 1, "overdue"), (due_day + rng.randint(5, 12), "paid")]
        else:
            steps += [(origin + 1, "failed"), (origin + 4, "failed"), (due_day + 1, "overdue")]
        for n, (when, status) in enumerate(steps):
            if when != day:
                continue
            at = self._at(day, 9 * 3600 + n * 60)
            payload = {**base, "status": status}
            if status == "paid":
                payload["paid_at"] = _iso(at)
            yield self._event(account, f"{invoice_id}-{n}-{status}", "billing", at, payload)

    def _emails(self, account: SimAccount, day: int, b: DayBehaviour) -> list[SimEvent]:
        rng = self._rng(account, day, "email")
        out = []
        for n in range(_poisson(rng, b.inbound_email_rate)):
            message_id = f"{account.account_id}-M{day}-{n}"
            payload = {
                "message_id": message_id,
                "direction": "inbound",
                "event": "delivered",
                "subject": rng.choice(_SUBJECTS[b.email_tone]),
                "text": rng.choice(_TEXTS[b.email_tone]),
            }
            at = self._at(day, rng.uniform(8 * 3600, 18 * 3600))
            out.append(self._event(account, f"{message_id}-in", "email", at, payload))
        if self.timeline.day_start(day).weekday() == account.pulse_weekday:
            message_id = f"{account.account_id}-CSM{day}"
            sent = rng.uniform(9 * 3600, 11 * 3600)
            actions = ["sent", "delivered"]
            engagement = rng.random()
            if engagement < b.reply_rate:
                actions += ["opened", "replied"]
            elif engagement < b.reply_rate + 0.2:
                actions.append("opened")
            for n, action in enumerate(actions):
                payload = {"message_id": message_id, "direction": "outbound", "event": action}
                at = self._at(day, sent + n * 1800)
                out.append(self._event(account, f"{message_id}-{action}", "email", at, payload))
        return out

    def _feedback(self, account: SimAccount, day: int, b: DayBehaviour) -> list[SimEvent]:
        rng = self._rng(account, day, "feedback")
        out = []
        if b.nps is not None and (day - account.survey_day) % 30 == 0:
            score = rng.randint(*b.nps)
            tone: Tone = "positive" if score >= 9 else ("neutral" if score >= 7 else "negative")
            payload = {"survey": "nps", "score": score, "comment": rng.choice(_TEXTS[tone])}
            at = self._at(day, rng.uniform(9 * 3600, 17 * 3600))
            out.append(
                self._event(account, f"{account.account_id}-nps{day}", "feedback", at, payload)
            )
        if self.timeline.day_start(day).weekday() == account.pulse_weekday:
            payload = {"survey": "csm_pulse", "score": rng.randint(*b.pulse)}
            at = self._at(day, 17 * 3600)
            out.append(
                self._event(account, f"{account.account_id}-pulse{day}", "feedback", at, payload)
            )
        return out
