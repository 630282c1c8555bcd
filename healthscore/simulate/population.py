"""A deterministic population of simulated accounts across segments, stages and personas."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from healthscore.simulate.personas import (
    ONBOARDING_HEAD_START,
    PERSONA_WEIGHTS,
    PERSONAS,
    Persona,
)

Segment = str

_SEGMENTS: dict[Persona, tuple[Segment, ...]] = {
    "healthy": ("smb", "mid_market", "enterprise"),
    "declining": ("mid_market", "smb"),
    "churning": ("smb", "mid_market", "enterprise"),
    "expanding": ("mid_market", "enterprise"),
    "onboarding_stalled": ("smb", "mid_market"),
}
_LICENSES: dict[Segment, tuple[int, int]] = {
    "smb": (4, 8),
    "mid_market": (8, 14),
    "enterprise": (14, 22),
}
_ARR_PER_LICENSE_CENTS = {"smb": 60_000, "mid_market": 90_000, "enterprise": 120_000}
_STAGES: dict[Persona, tuple[str, ...]] = {
    "healthy": ("adoption", "growth"),
    "declining": ("growth", "adoption"),
    "churning": ("adoption", "renewal"),
    "expanding": ("growth",),
    "onboarding_stalled": ("onboarding",),
}
# Renewal date, in days after the end of the history.
_RENEWAL_DAYS: dict[Persona, tuple[int, int]] = {
    "healthy": (120, 330),
    "declining": (60, 120),
    "churning": (25, 50),
    "expanding": (150, 300),
    "onboarding_stalled": (330, 360),
}
_OWNERS = ("Ana Lopez", "Ben Okafor", "Chloe Martin", "Dev Patel")
_NAME_A = (
    "Northwind", "Bluefin", "Copperleaf", "Driftwood", "Evergreen", "Foxglove", "Granite",
    "Harbor", "Ironbark", "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchard",
    "Pinecrest", "Quarry", "Redwood", "Saltmarsh", "Tidewater", "Umber", "Vantage", "Willow",
    "Yarrow",
)  # fmt: skip
_NAME_B = (
    "Logistics", "Analytics", "Health", "Foods", "Robotics", "Media", "Energy", "Labs",
    "Finance", "Travel", "Retail", "Studios",
)  # fmt: skip


@dataclass(frozen=True)
class SimAccount:
    account_id: str
    name: str
    persona: Persona
    segment: Segment
    lifecycle_stage: str
    owner: str
    licenses: int
    users: int  # size of the user pool (above ``licenses`` for expanding accounts)
    arr_cents: int
    renewal_in_days: int  # days from the end of the history to the renewal date
    created_day: int  # day index (since the simulation start) the account appears
    billing_period: int  # days between invoices
    billing_day: int  # day of the billing cycle its invoices are issued on
    survey_day: int  # day of the 30-day cycle it answers the NPS survey on
    pulse_weekday: int  # weekday the CSM records a pulse (0 = Monday)

    def renewal_date(self, anchor: dt.datetime) -> dt.date:
        return (anchor + dt.timedelta(days=self.renewal_in_days)).date()


def persona_sequence(count: int) -> list[Persona]:
    """The personas of a population of ``count`` accounts: every persona appears once before
    any repeats, then they follow PERSONA_WEIGHTS (deterministic, no randomness)."""
    rounds = max(PERSONA_WEIGHTS.values())
    cycle = [p for r in range(rounds) for p in PERSONAS if PERSONA_WEIGHTS[p] > r]
    return [cycle[i % len(cycle)] for i in range(count)]


def build_population(count: int, seed: int, history_days: int) -> tuple[SimAccount, ...]:
    """``count`` accounts; the same ``(count, seed, history_days)`` always gives the same ones.

    Accounts exist from day 0 of the simulation, except onboarding ones, which appear a little
    before the end of the history (day ``history_days``)."""
    if count < 1:
        raise ValueError("a population needs at least one account")
    accounts = []
    for index, persona in enumerate(persona_sequence(count)):
        rng = random.Random(f"{seed}:population:{index}")
        segment = rng.choice(_SEGMENTS[persona])
        low, high = _LICENSES[segment]
        licenses = rng.randint(low, high)
        users = round(licenses * 1.5) if persona == "expanding" else licenses
        name = f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)}"
        created = (
            max(0, history_days - ONBOARDING_HEAD_START) if persona == "onboarding_stalled" else 0
        )
        accounts.append(
            SimAccount(
                account_id=f"sim-{seed}-{index:04d}",
                name=name,
                persona=persona,
                segment=segment,
                lifecycle_stage=rng.choice(_STAGES[persona]),
                owner=_OWNERS[index % len(_OWNERS)],
                licenses=licenses,
                users=users,
                arr_cents=licenses * _ARR_PER_LICENSE_CENTS[segment],
                renewal_in_days=rng.randint(*_RENEWAL_DAYS[persona]),
                created_day=created,
                # Churning accounts pay weekly usage invoices, so a failed payment shows within
                # days of their collapse.
                billing_period=7 if persona == "churning" else 30,
                billing_day=rng.randrange(7 if persona == "churning" else 30),
                survey_day=rng.randrange(30),
                pulse_weekday=rng.randrange(5),
            )
        )
    return tuple(accounts)
