"""Engine throughput on one process: events applied/s, scores/s, state size per account.

Builds a realistic account (90 days of every event type, fixed seed), then measures, in the same
run, a baseline of plain dict updates doing the least an event could cost (a dedup set and a
per-day counter) so the ratio is meaningful on any machine.

    .venv/bin/python bench/engine.py [--accounts 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from healthscore.engine import (
    AccountState,
    apply_event,
    default_models,
    new_state,
    score,
)
from schemas.events import Event, event_from_obj

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DAYS = 90
TEXTS = (
    "Thanks, the new dashboard works great.",
    "Export keeps failing, this is blocking our month end close.",
    "Can we schedule a call about the renewal?",
    "Support was slow but the fix works now.",
    "We are unhappy with the recent outages.",
)


def realistic_account(account: str, rnd: random.Random) -> list[Event]:
    """~7k events: 30 licensed users, logins, features, API calls, tickets, bills, mail, NPS."""
    raw: list[dict[str, Any]] = []
    n = 0

    def add(type_: str, at: dt.datetime, payload: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        raw.append(
            {
                "event_id": f"{account}-{n}",
                "account_id": account,
                "type": type_,
                "occurred_at": at.isoformat(),
                "payload": payload,
            }
        )

    add(
        "account",
        START,
        {
            "name": account,
            "lifecycle_stage": "adoption",
            "segment": "smb",
            "licenses": 30,
            "renewal_date": "2024-09-30",
            "owner": "ana",
        },
    )
    users = [f"user-{i}" for i in range(30)]
    features = ["reports", "dashboards", "export", "alerts", "api_keys", "sso", "billing", "search"]
    for day in range(DAYS):
        base = START + dt.timedelta(days=day)
        for user in users:
            if rnd.random() < 0.6:
                at = base + dt.timedelta(seconds=rnd.randrange(86_400))
                add("usage", at, {"metric": "login", "user_id": user})
                for _ in range(rnd.randrange(4)):
                    add(
                        "usage",
                        at + dt.timedelta(minutes=5),
                        {
                            "metric": "feature_used",
                            "feature": rnd.choice(features),
                            "user_id": user,
                        },
                    )
        for _ in range(5):
            add(
                "usage",
                base + dt.timedelta(hours=rnd.randrange(24)),
                {"metric": "api_call", "quantity": float(rnd.randrange(1, 500))},
            )
        if rnd.random() < 0.3:
            tid = f"t{day}"
            prio = rnd.choice(["low", "normal", "high", "urgent"])
            add(
                "ticket",
                base + dt.timedelta(hours=9),
                {
                    "ticket_id": tid,
                    "status": "opened",
                    "priority": prio,
                    "category": "bug",
                    "text": rnd.choice(TEXTS),
                },
            )
            add(
                "ticket",
                base + dt.timedelta(hours=15),
                {
                    "ticket_id": tid,
                    "status": "resolved",
                    "priority": prio,
                    "csat": rnd.randrange(1, 6),
                    "first_response_seconds": 3600,
                },
            )
        if rnd.random() < 0.5:
            add(
                "email",
                base + dt.timedelta(hours=11),
                {
                    "message_id": f"m{day}",
                    "direction": rnd.choice(["inbound", "outbound"]),
                    "event": "sent",
                    "subject": "Weekly sync",
                    "text": rnd.choice(TEXTS),
                },
            )
        if day % 30 == 0:
            add(
                "billing",
                base,
                {
                    "invoice_id": f"inv{day}",
                    "status": "issued",
                    "amount_cents": 250_000,
                    "currency": "USD",
                    "due_at": (base + dt.timedelta(days=30)).isoformat(),
                },
            )
            add(
                "billing",
                base + dt.timedelta(days=12),
                {
                    "invoice_id": f"inv{day}",
                    "status": "paid",
                    "amount_cents": 250_000,
                    "currency": "USD",
                },
            )
            add(
                "feedback",
                base + dt.timedelta(days=3),
                {"survey": "nps", "score": rnd.randrange(5, 11), "comment": rnd.choice(TEXTS)},
            )
    rnd.shuffle(raw)  # arrival order is not event-time order
    return [event_from_obj(r) for r in raw]


def baseline(evs: list[Event]) -> float:
    """Plain dicts: remember the event id, count the event in its (type, day) bucket."""
    seen: set[str] = set()
    counts: dict[tuple[str, int], int] = {}
    t0 = time.perf_counter()
    for e in evs:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        key = (e.type, e.occurred_at.toordinal())
        counts[key] = counts.get(key, 0) + 1
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    accounts = [realistic_account(f"acct-{i}", rnd) for i in range(args.accounts)]
    total = sum(len(a) for a in accounts)
    model = next(m for m in default_models() if m.model.default)
    as_of = START + dt.timedelta(days=DAYS, hours=1)

    # warm-up (VADER's lexicon, compiled model plan)
    warm = new_state("warm")
    for e in accounts[0][:200]:
        apply_event(warm, e)
    score(warm, model, as_of)

    base_s = sum(baseline(evs) for evs in accounts)
    states: list[AccountState] = []
    t0 = time.perf_counter()
    for evs in accounts:
        state = new_state(evs[0].account_id)
        for e in evs:
            apply_event(state, e)
        states.append(state)
    apply_s = time.perf_counter() - t0

    text_free = [[e for e in evs if not _has_text(e)] for evs in accounts]
    n_text_free = sum(len(a) for a in text_free)
    t0 = time.perf_counter()
    for evs in text_free:
        state = new_state(evs[0].account_id)
        for e in evs:
            apply_event(state, e)
    apply_plain_s = time.perf_counter() - t0

    rounds = max(1, 2000 // len(states))
    t0 = time.perf_counter()
    for _ in range(rounds):
        for state in states:
            score(state, model, as_of)
    score_s = time.perf_counter() - t0
    n_scores = rounds * len(states)

    blobs = [s.to_bytes() for s in states]
    t0 = time.perf_counter()
    for _ in range(rounds):
        for s in states:
            s.to_bytes()
    enc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rounds):
        for b in blobs:
            AccountState.from_bytes(b)
    dec_s = time.perf_counter() - t0
    sizes = [len(b) for b in blobs]

    print(
        f"accounts: {len(accounts)}, events: {total} ({total // len(accounts)} per account, "
        f"{DAYS} days, seed {args.seed})"
    )
    print(f"baseline dict updates:   {total / base_s:12,.0f} events/s")
    print(
        f"apply_event (all):       {total / apply_s:12,.0f} events/s   "
        f"({base_s / apply_s:.2f}x baseline; texts are scored with VADER)"
    )
    print(f"apply_event (no text):   {n_text_free / apply_plain_s:12,.0f} events/s")
    print(
        f"score (default model):   {n_scores / score_s:12,.0f} scores/s   "
        f"({score_s / n_scores * 1e6:.0f} us each)"
    )
    print(
        f"to_bytes / from_bytes:   {enc_s / n_scores * 1e6:8.0f} us / "
        f"{dec_s / n_scores * 1e6:.0f} us"
    )
    print(
        f"state size:              {statistics.median(sizes):8,.0f} bytes per account (median; "
        f"max {max(sizes):,})"
    )
    return 0


def _has_text(e: Event) -> bool:
    p = e.payload
    return any(getattr(p, f, None) for f in ("text", "subject", "comment"))


if __name__ == "__main__":
    raise SystemExit(main())
