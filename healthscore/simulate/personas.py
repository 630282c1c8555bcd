"""Personas: how an account of each kind behaves on a given simulated day.

Behaviour is a pure function of the persona and ``x``, the number of days since the *pivot* (the
moment the personas' stories begin; negative before). Every persona looks ordinary, and behaves
the same from day to day, before the pivot, so accounts reach it with a plausible history and
the history does not depend on when the pivot comes; each persona's story plays out after it:

- ``healthy``: steady, broad usage, few low-priority tickets, invoices paid on time, promoters.
- ``declining``: usage erodes slowly after the pivot, tickets and late payments creep up, lukewarm
  feedback: a green account that slides to amber over a few weeks.
- ``churning``: a day after the pivot usage collapses, urgent tickets pile up unresolved,
  payments fail, emails turn negative, detractor scores.
- ``expanding``: more active users than licenses, heavy feature and API usage, promoters.
- ``onboarding_stalled``: a new account in onboarding that activated a few users, then stops
  using the product at the pivot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Persona = Literal["healthy", "declining", "churning", "expanding", "onboarding_stalled"]
PERSONAS: tuple[Persona, ...] = (
    "healthy",
    "declining",
    "churning",
    "expanding",
    "onboarding_stalled",
)

# Share of a population per persona (healthy accounts are the majority, as in a real book).
PERSONA_WEIGHTS: dict[Persona, int] = {
    "healthy": 4,
    "declining": 2,
    "churning": 2,
    "expanding": 2,
    "onboarding_stalled": 2,
}

Tone = Literal["positive", "neutral", "negative"]
PaymentOutcome = Literal["on_time", "late", "failed"]


@dataclass(frozen=True)
class DayBehaviour:
    """Expected activity of one account on one day (rates are per day)."""

    active_share: float  # chance that a user of the pool logs in on a weekday
    features_per_login: float  # feature_used events per login
    api_calls: int  # api_call quantity for the day (0: no api usage event)
    ticket_rate: float  # tickets opened per day
    urgent_share: float  # share of opened tickets that are high or urgent
    resolve_days: tuple[int, int] | None  # resolution delay range; None: tickets stay open
    csat: tuple[int, int]  # csat range given at resolution
    payment: PaymentOutcome
    inbound_email_rate: float
    email_tone: Tone
    reply_rate: float  # chance the customer opens and replies to the CSM's weekly email
    nps: tuple[int, int] | None  # None: the account answers no survey
    pulse: tuple[int, int]  # the CSM's weekly pulse (1-5)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * min(1.0, max(0.0, t))


def behaviour(persona: Persona, x: float) -> DayBehaviour:
    """What an account of ``persona`` does ``x`` days after the pivot."""
    if persona == "healthy":
        return DayBehaviour(
            active_share=0.85,
            features_per_login=0.3,
            api_calls=400,
            ticket_rate=0.06,
            urgent_share=0.0,
            resolve_days=(0, 2),
            csat=(4, 5),
            payment="on_time",
            inbound_email_rate=0.15,
            email_tone="positive",
            reply_rate=0.8,
            nps=(9, 10),
            pulse=(4, 5),
        )
    if persona == "declining":
        t = x / 18.0  # the slide takes about two and a half weeks
        sliding = x >= 0
        return DayBehaviour(
            active_share=_lerp(0.75, 0.15, t),
            features_per_login=_lerp(0.3, 0.1, t),
            api_calls=int(_lerp(250, 40, t)),
            ticket_rate=_lerp(0.1, 0.45, t),
            urgent_share=_lerp(0.1, 0.45, t),
            resolve_days=(2, 7),
            csat=(2, 4) if sliding else (3, 5),
            payment="late" if x >= 4 else "on_time",
            inbound_email_rate=0.2,
            email_tone="negative" if x >= 6 else "neutral",
            reply_rate=_lerp(0.6, 0.15, t),
            nps=(4, 6) if x >= 6 else (7, 8),
            pulse=(2, 3) if x >= 6 else (3, 4),
        )
    if persona == "churning":
        collapsed = x >= 1
        fade = math.exp(-(x - 1)) if collapsed else 1.0
        return DayBehaviour(
            active_share=0.7 * fade,
            features_per_login=0.3,
            api_calls=int(220 * fade),
            ticket_rate=0.9 if collapsed else 0.1,
            urgent_share=0.9 if collapsed else 0.1,
            resolve_days=None if collapsed else (1, 4),
            csat=(1, 2) if collapsed else (3, 5),
            payment="failed" if collapsed else "on_time",
            inbound_email_rate=0.6 if collapsed else 0.15,
            email_tone="negative" if collapsed else "neutral",
            reply_rate=0.0 if collapsed else 0.6,
            nps=(0, 3) if collapsed else (7, 9),
            pulse=(1, 1) if collapsed else (3, 4),
        )
    if persona == "expanding":
        return DayBehaviour(
            active_share=0.92,
            features_per_login=0.5,
            api_calls=int(_lerp(1500, 4000, x / 30)),
            ticket_rate=0.08,
            urgent_share=0.0,
            resolve_days=(0, 1),
            csat=(5, 5),
            payment="on_time",
            inbound_email_rate=0.25,
            email_tone="positive",
            reply_rate=0.9,
            nps=(10, 10),
            pulse=(5, 5),
        )
    # onboarding_stalled: created ONBOARDING_HEAD_START days before the end of the history,
    # engaged until a few days before the pivot, then silent.
    engaged = x < -3
    return DayBehaviour(
        active_share=0.6 if engaged else (0.1 if x < 0 else 0.0),
        features_per_login=0.5,
        api_calls=0,
        ticket_rate=0.25 if engaged else 0.0,
        urgent_share=0.0,
        resolve_days=(1, 3),
        csat=(3, 4),
        payment="on_time",
        inbound_email_rate=0.1 if engaged else 0.0,
        email_tone="neutral",
        reply_rate=0.5 if engaged else 0.0,
        nps=None,
        pulse=(3, 3) if engaged else (2, 2),
    )


# How many days before the end of the history an onboarding account is created.
ONBOARDING_HEAD_START = 12
