"""Per-account state: compact, model-independent, updated in O(1) amortised per event.

What it keeps (bounds in :mod:`healthscore.engine.catalogue`; docs/health-models.md, "State"):

- **daily buckets**: per event type, per dimension key (e.g. usage ``(metric, feature)``), per
  UTC day of event time, a vector of integer columns (count, sums of numeric fields, sentiment);
- **distinct users**: per usage key, per user id, a bit mask of the days the user was active;
- **latest**: per dimension key, the event-time stamp and numeric values of its newest event;
- **tickets** and **invoices** by id, last write wins by ``(occurred_at, event id)``;
- **profile** fields, last write wins by ``(occurred_at, event id)`` per field;
- **seen event ids** (64-bit hashes) of the most recently accepted events, for de-duplication.

Every order-sensitive choice is decided by event time with the event id's hash as tie-break and
every sum is an exact integer, so the same set of events in any order gives the same state (within
the documented caps). Days older than ``RETENTION_DAYS`` before the newest event are pruned on
apply, relative to event time only: nothing here reads a clock.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from typing import Any, Final

import orjson

from healthscore.engine.catalogue import (
    FOLDED_KEYS,
    LAYOUTS,
    MAX_INVOICES,
    MAX_TICKETS,
    MAX_USERS_PER_KEY,
    NONE,
    OPEN_TICKET_STATUSES,
    OTHER,
    QUANTITY_SCALE,
    RETENTION_DAYS,
    SEEN_EVENT_IDS,
    SENTIMENT_SCALE,
    SETTLED_INVOICE_STATUSES,
    TRACKED_EVENTS,
)
from healthscore.engine.profile import PROFILE_FIELDS, Profile
from healthscore.engine.sentiment import compound
from schemas.events import (
    AccountEvent,
    BillingEvent,
    EmailEvent,
    Event,
    FeedbackEvent,
    TicketEvent,
    UsageEvent,
)

STATE_FORMAT_VERSION: Final = 1

DAY_US: Final = 86_400_000_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US: Final = dt.timedelta(microseconds=1)
_KEY_SEP: Final = "|"

Dims = tuple[str, ...]
DaySeries = dict[int, list[int]]
# [occurred_us, tie, then per numeric field of the layout: field_us, field_tie, value]
LatestEntry = list[Any]


def to_micros(moment: dt.datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (moment - _EPOCH) // _ONE_US


def event_id_hash(event_id: str) -> int:
    """A stable 63-bit hash of an event id (de-duplication key and deterministic tie-break)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class AccountState:
    """Everything the engine knows about one account; see the module docstring."""

    __slots__ = (
        "account_id",
        "invoices",
        "latest",
        "newest_day",
        "oldest_day",
        "profile",
        "profile_stamps",
        "seen",
        "series",
        "tickets",
        "type_seen",
        "users",
    )

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.profile = Profile()
        self.profile_stamps: dict[str, tuple[int, int]] = {}
        # Newest UTC day (days since epoch) of any tracked event; None before the first one.
        self.newest_day: int | None = None
        # Oldest day present in any bucket (lets pruning skip work when nothing is due).
        self.oldest_day: int | None = None
        self.series: dict[str, dict[Dims, DaySeries]] = {t: {} for t in TRACKED_EVENTS}
        # usage key -> user id -> bit mask of active days, bit i = day (base_day + i)
        self.users: dict[Dims, dict[str, int]] = {}
        self.latest: dict[str, dict[Dims, LatestEntry]] = {t: {} for t in TRACKED_EVENTS}
        self.type_seen: dict[str, int] = {}  # event type -> newest occurred_us
        # ticket id -> [status, priority, occurred_us, tie, first_occurred_us]
        self.tickets: dict[str, list[Any]] = {}
        # invoice id -> [status, occurred_us, tie, due_us | None, due_stamp_us, due_stamp_tie]
        self.invoices: dict[str, list[Any]] = {}
        self.seen: dict[int, None] = {}  # insertion ordered: oldest accepted first

    @property
    def base_day(self) -> int | None:
        """The oldest day the state keeps (bit 0 of the user masks)."""
        return None if self.newest_day is None else self.newest_day - RETENTION_DAYS + 1

    def __repr__(self) -> str:
        return f"AccountState(account_id={self.account_id!r}, newest_day={self.newest_day})"

    def __eq__(self, other: object) -> bool:
        """Same content; the de-duplication memory is compared as a set (arrival order aside)."""
        if not isinstance(other, AccountState):
            return NotImplemented
        return self._canonical(sort_seen=True) == other._canonical(sort_seen=True)

    __hash__ = None  # type: ignore[assignment]

    # -- serialisation -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact, versioned encoding (JSON via orjson); see :meth:`from_bytes`."""
        return orjson.dumps(self._canonical(sort_seen=False))

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountState:
        doc = orjson.loads(data)
        version = doc.get("v") if isinstance(doc, dict) else None
        if version != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported account state format version {version!r}")
        return _decode(doc)

    def _canonical(self, *, sort_seen: bool) -> dict[str, Any]:
        series: dict[str, list[Any]] = {}
        for etype, keys in self.series.items():
            rows = []
            for dims in sorted(keys):
                days = keys[dims]
                ordered = sorted(days)
                columns: list[list[int]] = [
                    _deltas(ordered),
                    *([days[d][c] for d in ordered] for c in range(LAYOUTS[etype].columns)),  # type: ignore[index]
                ]
                if etype == "usage":
                    # Quantities default to 1: store the excess over one per event (mostly zeros).
                    columns[2] = [
                        q - n * QUANTITY_SCALE for q, n in zip(columns[2], columns[1], strict=True)
                    ]
                rows.append([_KEY_SEP.join(dims), *columns])
            if rows:
                series[etype] = rows
        user_ids = sorted({u for masks in self.users.values() for u in masks})
        index = {u: i for i, u in enumerate(user_ids)}
        masks_out = [
            [_KEY_SEP.join(dims), [[index[u], format(m, "x")] for u, m in sorted(masks.items())]]
            for dims, masks in sorted(self.users.items())
        ]
        latest = {
            etype: [[_KEY_SEP.join(dims), *keys[dims]] for dims in sorted(keys)]
            for etype, keys in self.latest.items()
            if keys
        }
        profile = {
            name: (value.isoformat() if isinstance(value, dt.date) else value)
            for name in PROFILE_FIELDS
            if (value := getattr(self.profile, name)) is not None
        }
        seen = sorted(self.seen) if sort_seen else list(self.seen)
        return {
            "v": STATE_FORMAT_VERSION,
            "a": self.account_id,
            "p": profile,
            "ps": {k: list(v) for k, v in sorted(self.profile_stamps.items())},
            "n": self.newest_day,
            "s": series,
            "ui": user_ids,
            "um": masks_out,
            "l": latest,
            "t": dict(sorted(self.type_seen.items())),
            "tk": [[k, *v] for k, v in sorted(self.tickets.items())],
            "iv": [[k, *v] for k, v in sorted(self.invoices.items())],
            "seen": base64.b64encode(b"".join(h.to_bytes(8, "big") for h in seen)).decode(),
        }


def _deltas(days: list[int]) -> list[int]:
    return [d - p for d, p in zip(days, [0, *days[:-1]], strict=True)]


def _split(key: str) -> Dims:
    return tuple(key.split(_KEY_SEP))


def _decode(doc: dict[str, Any]) -> AccountState:
    state = AccountState(doc["a"])
    prof = dict(doc["p"])
    if "renewal_date" in prof:
        prof["renewal_date"] = dt.date.fromisoformat(prof["renewal_date"])
    state.profile = Profile(**prof)
    state.profile_stamps = {k: (v[0], v[1]) for k, v in doc["ps"].items()}
    state.newest_day = doc["n"]
    oldest: int | None = None
    for etype, rows in doc["s"].items():
        keys = state.series[etype]
        for row in rows:
            dims = _split(row[0])
            day = 0
            days: DaySeries = {}
            columns = row[2:]
            if etype == "usage":
                columns = [
                    columns[0],
                    [q + n * QUANTITY_SCALE for q, n in zip(columns[1], columns[0], strict=True)],
                ]
            for i, delta in enumerate(row[1]):
                day += delta
                days[day] = [col[i] for col in columns]
            if days:
                first = min(days)
                oldest = first if oldest is None else min(oldest, first)
            keys[dims] = days
    state.oldest_day = oldest
    user_ids = doc["ui"]
    for key, masks in doc["um"]:
        state.users[_split(key)] = {user_ids[i]: int(m, 16) for i, m in masks}
    for etype, rows in doc["l"].items():
        state.latest[etype] = {_split(row[0]): list(row[1:]) for row in rows}
    state.type_seen = dict(doc["t"])
    state.tickets = {row[0]: list(row[1:]) for row in doc["tk"]}
    state.invoices = {row[0]: list(row[1:]) for row in doc["iv"]}
    raw = base64.b64decode(doc["seen"])
    state.seen = dict.fromkeys(int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8))
    return state


def new_state(account_id: str) -> AccountState:
    """An empty state for an account that has not been seen yet."""
    return AccountState(account_id)


# -- applying events ---------------------------------------------------------------------------


def apply_event(state: AccountState, event: Event) -> bool:
    """Fold one event into the state in place.

    Returns False (and changes nothing) when the event id was seen among the last
    ``SEEN_EVENT_IDS`` accepted events, or when a non-``account`` event is older than
    ``RETENTION_DAYS`` before the newest event seen. ``account`` events only touch profile fields
    (last write wins by event time), so they are accepted at any age.
    """
    tie = event_id_hash(event.event_id)
    if tie in state.seen:
        return False
    us = to_micros(event.occurred_at)
    if isinstance(event, AccountEvent):
        _apply_profile(state, event, us, tie)
        _remember(state, tie)
        return True
    day = us // DAY_US
    newest = state.newest_day
    if newest is None or day > newest:
        _advance(state, day)
    elif day <= newest - RETENTION_DAYS:
        return False
    seen_type = state.type_seen.get(event.type)
    if seen_type is None or us > seen_type:
        state.type_seen[event.type] = us
    if isinstance(event, UsageEvent):
        _apply_usage(state, event, us, tie, day)
    elif isinstance(event, TicketEvent):
        _apply_ticket(state, event, us, tie, day)
    elif isinstance(event, BillingEvent):
        _apply_billing(state, event, us, tie, day)
    elif isinstance(event, EmailEvent):
        _apply_email(state, event, us, tie, day)
    elif isinstance(event, FeedbackEvent):
        _apply_feedback(state, event, us, tie, day)
    _remember(state, tie)
    return True


def _remember(state: AccountState, tie: int) -> None:
    seen = state.seen
    seen[tie] = None
    if len(seen) > SEEN_EVENT_IDS:
        del seen[next(iter(seen))]


def _apply_profile(state: AccountState, event: AccountEvent, us: int, tie: int) -> None:
    payload = event.payload
    stamp = (us, tie)
    changes: dict[str, Any] = {}
    for name in PROFILE_FIELDS:
        value = getattr(payload, name)
        if value is None:
            continue
        current = state.profile_stamps.get(name)
        if current is None or stamp > current:
            state.profile_stamps[name] = stamp
            changes[name] = value
    if changes:
        state.profile = dataclasses.replace(state.profile, **changes)


def _advance(state: AccountState, day: int) -> None:
    """Move the newest day forward and drop what fell out of retention."""
    old_base = state.base_day
    state.newest_day = day
    base = day - RETENTION_DAYS + 1
    if old_base is None:
        return
    shift = base - old_base
    if state.users:
        for dims in list(state.users):
            masks = state.users[dims]
            for user in list(masks):
                mask = masks[user] >> shift
                if mask:
                    masks[user] = mask
                else:
                    del masks[user]
            if not masks:
                del state.users[dims]
    if state.oldest_day is not None and state.oldest_day < base:
        oldest: int | None = None
        for keys in state.series.values():
            for dims in list(keys):
                days = keys[dims]
                for d in [d for d in days if d < base]:
                    del days[d]
                if days:
                    first = min(days)
                    oldest = first if oldest is None else min(oldest, first)
                else:
                    del keys[dims]
        state.oldest_day = oldest
    cutoff_us = base * DAY_US
    for tid in [
        t for t, v in state.tickets.items() if v[0] not in OPEN_TICKET_STATUSES and v[2] < cutoff_us
    ]:
        del state.tickets[tid]
    for iid in [
        i
        for i, v in state.invoices.items()
        if v[0] in SETTLED_INVOICE_STATUSES and v[1] < cutoff_us
    ]:
        del state.invoices[iid]


def _bucket(state: AccountState, etype: str, dims: Dims, day: int) -> tuple[Dims, list[int]]:
    """The day vector for a key, admitting the key within the type's bound."""
    keys = state.series[etype]
    days = keys.get(dims)
    if days is None:
        dims = _admit(state, etype, dims)
        days = keys.get(dims)
        if days is None:
            days = keys[dims] = {}
    vec = days.get(day)
    if vec is None:
        vec = days[day] = [0] * LAYOUTS[etype].columns  # type: ignore[index]
        if state.oldest_day is None or day < state.oldest_day:
            state.oldest_day = day
    return dims, vec


def _admit(state: AccountState, etype: str, dims: Dims) -> Dims:
    latest = state.latest[etype]
    if dims in latest:
        return dims
    layout = LAYOUTS[etype]  # type: ignore[index]
    if len(latest) < layout.max_keys:
        return dims
    # Forget the key with the oldest newest event that has no bucket left, else fold into OTHER.
    keys = state.series[etype]
    idle = [k for k in latest if k not in keys]
    if idle:
        del latest[min(idle, key=lambda k: (latest[k][0], latest[k][1]))]
        return dims
    # Fold the last free-form dimension first (usage keeps its metric, ticket its status and
    # priority); past FOLDED_KEYS such keys, fold every free-form dimension.
    free = [i for i, name in enumerate(layout.dims) if name not in layout.enum_values]
    partial = list(dims)
    if free and partial[free[-1]] != NONE:
        partial[free[-1]] = OTHER
    if tuple(partial) in latest or len(latest) < layout.max_keys + FOLDED_KEYS:
        return tuple(partial)
    return tuple(OTHER if i in free and dims[i] != NONE else v for i, v in enumerate(dims))


def _touch_latest(
    state: AccountState, etype: str, dims: Dims, us: int, tie: int, values: tuple[float | None, ...]
) -> None:
    entries = state.latest[etype]
    entry = entries.get(dims)
    if entry is None:
        entry = entries[dims] = [us, tie, *([-1, 0, None] * len(values))]
    elif (us, tie) > (entry[0], entry[1]):
        entry[0] = us
        entry[1] = tie
    for i, value in enumerate(values):
        if value is None:
            continue
        at = 2 + 3 * i
        if entry[at] < 0 or (us, tie) > (entry[at], entry[at + 1]):
            entry[at] = us
            entry[at + 1] = tie
            entry[at + 2] = value


def _apply_usage(state: AccountState, event: UsageEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    dims, vec = _bucket(state, "usage", (p.metric, p.feature or NONE), day)
    vec[0] += 1
    vec[1] += round(p.quantity * QUANTITY_SCALE)
    if p.user_id is not None:
        masks = state.users.get(dims)
        if masks is None:
            masks = state.users[dims] = {}
        bit = 1 << (day - (state.newest_day or day) + RETENTION_DAYS - 1)
        current = masks.get(p.user_id)
        if current is not None:
            masks[p.user_id] = current | bit
        elif len(masks) < MAX_USERS_PER_KEY:
            masks[p.user_id] = bit
    _touch_latest(state, "usage", dims, us, tie, (p.quantity,))


def _sentiment(*texts: str | None) -> int | None:
    present = [t for t in texts if t]
    if not present:
        return None
    return round(compound(" ".join(present)) * SENTIMENT_SCALE)


def _apply_ticket(state: AccountState, event: TicketEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    dims, vec = _bucket(state, "ticket", (p.status, p.priority, p.category or NONE), day)
    vec[0] += 1
    if p.csat is not None:
        vec[1] += p.csat
        vec[2] += 1
    if p.first_response_seconds is not None:
        vec[3] += p.first_response_seconds
        vec[4] += 1
    sentiment = _sentiment(p.text)
    if sentiment is not None:
        vec[5] += sentiment
        vec[6] += 1
    _touch_latest(state, "ticket", dims, us, tie, (p.csat, p.first_response_seconds))
    ticket = state.tickets.get(p.ticket_id)
    if ticket is None:
        state.tickets[p.ticket_id] = [p.status, p.priority, us, tie, us]
        if len(state.tickets) > MAX_TICKETS:
            _evict(state.tickets, lambda v: (v[0] in OPEN_TICKET_STATUSES, v[2], v[3]))
    else:
        if (us, tie) > (ticket[2], ticket[3]):
            ticket[0], ticket[1], ticket[2], ticket[3] = p.status, p.priority, us, tie
        if us < ticket[4]:
            ticket[4] = us


def _evict(items: dict[str, list[Any]], rank: Any) -> None:
    del items[min(items, key=lambda k: rank(items[k]))]


def _apply_billing(state: AccountState, event: BillingEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    dims, vec = _bucket(state, "billing", (p.status, p.currency), day)
    vec[0] += 1
    vec[1] += p.amount_cents
    _touch_latest(state, "billing", dims, us, tie, (float(p.amount_cents),))
    due_us = to_micros(p.due_at) if p.due_at is not None else None
    invoice = state.invoices.get(p.invoice_id)
    if invoice is None:
        if due_us is None:
            state.invoices[p.invoice_id] = [p.status, us, tie, None, -1, 0]
        else:
            state.invoices[p.invoice_id] = [p.status, us, tie, due_us, us, tie]
        if len(state.invoices) > MAX_INVOICES:
            _evict(state.invoices, lambda v: (v[0] not in SETTLED_INVOICE_STATUSES, v[1], v[2]))
        return
    if (us, tie) > (invoice[1], invoice[2]):
        invoice[0], invoice[1], invoice[2] = p.status, us, tie
    if due_us is not None and (invoice[4] < 0 or (us, tie) > (invoice[4], invoice[5])):
        invoice[3], invoice[4], invoice[5] = due_us, us, tie


def _apply_email(state: AccountState, event: EmailEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    dims, vec = _bucket(state, "email", (p.direction, p.event), day)
    vec[0] += 1
    sentiment = _sentiment(p.subject, p.text)
    if sentiment is not None:
        vec[1] += sentiment
        vec[2] += 1
    _touch_latest(state, "email", dims, us, tie, ())


def _apply_feedback(state: AccountState, event: FeedbackEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    dims, vec = _bucket(state, "feedback", (p.survey,), day)
    vec[0] += 1
    vec[1] += p.score
    sentiment = _sentiment(p.comment)
    if sentiment is not None:
        vec[2] += sentiment
        vec[3] += 1
    _touch_latest(state, "feedback", dims, us, tie, (float(p.score),))
