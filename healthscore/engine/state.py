"""Per-account state: compact, model-independent, updated in O(1) amortised per event.

What it keeps (bounds in :mod:`healthscore.engine.catalogue`; docs/health-models.md, "State"):

- **daily buckets**: per event type, per dimension key (e.g. usage ``login|`` for metric
  ``login`` without a feature), columnar: the sorted UTC days (days since the epoch) that have
  events, and per column (count, sums of numeric fields, sentiment) the integer for each day;
- **distinct users**: for any usage (``*``) and per usage metric (``<metric>|*``), per user id,
  a bit mask of the days the user was active (hex; bit 0 = the oldest retained day);
- **latest**: per dimension key, the event-time stamp and numeric values of its newest event;
- **tickets** and **invoices** by id, last write wins by ``(occurred_at, tie)``;
- **profile** fields, last write wins by ``(occurred_at, tie)`` per field;
- **seen event ids** (64-bit hashes) of the most recently accepted events, for de-duplication.

``tie`` is a 32-bit hash of the event id: a deterministic tie-break between events with the same
``occurred_at``, so that no decision depends on arrival order.

Every order-sensitive choice is decided by event time with the event id's hash as tie-break and
every sum is an exact integer, so the same set of events in any order gives an equal state (within
the documented caps). Days older than ``RETENTION_DAYS`` before the newest event are pruned on
apply, relative to event time only: nothing here reads a clock.

The in-memory layout is JSON-native (string keys, lists of ints), so serialisation is a single
``orjson`` call each way with no per-item Python work: the scorer decodes and encodes a state for
every event.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from bisect import bisect_left
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
KEY_SEP: Final = "|"
ANY_USAGE: Final = "*"  # users key for "any usage event"

# [sorted days, column 0 per day, column 1 per day, ...]
DaySeries = list[list[int]]
# [occurred_us, tie, then per numeric field of the layout: field_us, field_tie, value]
LatestEntry = list[Any]


def to_micros(moment: dt.datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (moment - _EPOCH) // _ONE_US


def event_id_hash(event_id: str) -> bytes:
    """A stable 64-bit hash of an event id: its de-duplication key (first 4 bytes: the tie)."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


class AccountState:
    """Everything the engine knows about one account; see the module docstring."""

    __slots__ = (
        "account_id",
        "invoices",
        "latest",
        "newest_day",
        "oldest_day",
        "profile",
        "profile_doc",
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
        self.profile_doc: dict[str, Any] = {}  # the profile as JSON (renewal_date ISO)
        self.profile_stamps: dict[str, list[int]] = {}  # field -> [occurred_us, tie]
        # Newest UTC day (days since epoch) of any tracked event; None before the first one.
        self.newest_day: int | None = None
        # Oldest day present in any bucket (lets pruning skip work when nothing is due).
        self.oldest_day: int | None = None
        self.series: dict[str, dict[str, DaySeries]] = {t: {} for t in TRACKED_EVENTS}
        # users key -> user id -> hex bit mask of active days, bit i = day (base_day + i)
        self.users: dict[str, dict[str, str]] = {}
        self.latest: dict[str, dict[str, LatestEntry]] = {t: {} for t in TRACKED_EVENTS}
        self.type_seen: dict[str, int] = {}  # event type -> newest occurred_us
        # ticket id -> [status, priority, occurred_us, tie, first_occurred_us]
        self.tickets: dict[str, list[Any]] = {}
        # invoice id -> [status, occurred_us, tie, due_us | None, due_stamp_us, due_stamp_tie]
        self.invoices: dict[str, list[Any]] = {}
        self.seen = b""  # 8-byte event id hashes, oldest accepted first

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
        mine, theirs = self._document(), other._document()
        mine["seen"], theirs["seen"] = _chunks(self.seen), _chunks(other.seen)
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]

    # -- serialisation -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact, versioned encoding (JSON via orjson); see :meth:`from_bytes`."""
        return orjson.dumps(self._document())

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountState:
        doc = orjson.loads(data)
        version = doc.get("v") if isinstance(doc, dict) else None
        if version != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported account state format version {version!r}")
        state = cls(doc["a"])
        state.profile_doc = doc["p"]
        if state.profile_doc:
            state.profile = _profile_from_doc(state.profile_doc)
        state.profile_stamps = doc["ps"]
        state.newest_day = doc["n"]
        state.oldest_day = doc["o"]
        state.series.update(doc["s"])
        state.users = doc["u"]
        state.latest.update(doc["l"])
        state.type_seen = doc["t"]
        state.tickets = doc["tk"]
        state.invoices = doc["iv"]
        state.seen = base64.b64decode(doc["seen"])
        return state

    def _document(self) -> dict[str, Any]:
        return {
            "v": STATE_FORMAT_VERSION,
            "a": self.account_id,
            "p": self.profile_doc,
            "ps": self.profile_stamps,
            "n": self.newest_day,
            "o": self.oldest_day,
            "s": {t: keys for t, keys in self.series.items() if keys},
            "u": self.users,
            "l": {t: keys for t, keys in self.latest.items() if keys},
            "t": self.type_seen,
            "tk": self.tickets,
            "iv": self.invoices,
            "seen": base64.b64encode(self.seen).decode(),
        }


def _chunks(blob: bytes) -> list[bytes]:
    return sorted(blob[i : i + 8] for i in range(0, len(blob), 8))


def _was_seen(blob: bytes, digest: bytes) -> bool:
    at = blob.find(digest)
    while at >= 0:
        if at % 8 == 0:
            return True
        at = blob.find(digest, at + 1)
    return False


def _profile_from_doc(doc: dict[str, Any]) -> Profile:
    fields = dict(doc)
    renewal = fields.get("renewal_date")
    if renewal is not None:
        fields["renewal_date"] = dt.date.fromisoformat(renewal)
    return Profile(**fields)


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
    digest = event_id_hash(event.event_id)
    if _was_seen(state.seen, digest):
        return False
    tie = int.from_bytes(digest[:4], "big")
    us = to_micros(event.occurred_at)
    if isinstance(event, AccountEvent):
        _apply_profile(state, event, us, tie)
        _remember(state, digest)
        return True
    day = us // DAY_US
    newest = state.newest_day
    if newest is None or day > newest:
        if day < 0:
            return False  # before 1970: not a real event time
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
    _remember(state, digest)
    return True


def _remember(state: AccountState, digest: bytes) -> None:
    seen = state.seen + digest
    if len(seen) > 8 * SEEN_EVENT_IDS:
        seen = seen[8:]
    state.seen = seen


def _apply_profile(state: AccountState, event: AccountEvent, us: int, tie: int) -> None:
    payload = event.payload
    stamp = [us, tie]
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
        for name, value in changes.items():
            state.profile_doc[name] = value.isoformat() if isinstance(value, dt.date) else value
        state.profile = _profile_from_doc(state.profile_doc)


def _advance(state: AccountState, day: int) -> None:
    """Move the newest day forward and drop what fell out of retention."""
    old_base = state.base_day
    state.newest_day = day
    base = day - RETENTION_DAYS + 1
    if old_base is None:
        return
    shift = base - old_base
    for key in list(state.users):
        masks = state.users[key]
        for user in list(masks):
            mask = int(masks[user], 16) >> shift
            if mask:
                masks[user] = format(mask, "x")
            else:
                del masks[user]
        if not masks:
            del state.users[key]
    if state.oldest_day is not None and state.oldest_day < base:
        oldest: int | None = None
        for keys in state.series.values():
            for key in list(keys):
                columns = keys[key]
                cut = bisect_left(columns[0], base)
                if cut:
                    for column in columns:
                        del column[:cut]
                if columns[0]:
                    first = columns[0][0]
                    oldest = first if oldest is None else min(oldest, first)
                else:
                    del keys[key]
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


def _bucket(state: AccountState, etype: str, key: str, day: int) -> tuple[str, DaySeries, int]:
    """A key's columns and the index of ``day`` in them, admitting the key within its bound.

    Column ``c`` of the layout is ``columns[c + 1]``; ``columns[0]`` holds the days.
    """
    keys = state.series[etype]
    columns = keys.get(key)
    if columns is None:
        key = _admit(state, etype, key)
        columns = keys.get(key)
        if columns is None:
            width = LAYOUTS[etype].columns  # type: ignore[index]
            columns = keys[key] = [[] for _ in range(width + 1)]
    days = columns[0]
    if days and days[-1] == day:  # the usual case: another event of the newest day
        return key, columns, len(days) - 1
    at = bisect_left(days, day)
    if at == len(days) or days[at] != day:
        for column in columns:
            column.insert(at, 0)
        days[at] = day
        if state.oldest_day is None or day < state.oldest_day:
            state.oldest_day = day
    return key, columns, at


def _admit(state: AccountState, etype: str, key: str) -> str:
    latest = state.latest[etype]
    if key in latest:
        return key
    layout = LAYOUTS[etype]  # type: ignore[index]
    if len(latest) < layout.max_keys:
        return key
    # Forget the key with the oldest newest event that has no bucket left, else fold into OTHER.
    keys = state.series[etype]
    idle = [k for k in latest if k not in keys]
    if idle:
        del latest[min(idle, key=lambda k: (latest[k][0], latest[k][1]))]
        return key
    # Fold the last free-form dimension first (usage keeps its metric, ticket its status and
    # priority); past FOLDED_KEYS such keys, fold every free-form dimension.
    dims = key.split(KEY_SEP)
    free = [i for i, name in enumerate(layout.dims) if name not in layout.enum_values]
    partial = list(dims)
    if free and partial[free[-1]] != NONE:
        partial[free[-1]] = OTHER
    partial_key = KEY_SEP.join(partial)
    if partial_key in latest or len(latest) < layout.max_keys + FOLDED_KEYS:
        return partial_key
    return KEY_SEP.join(OTHER if i in free and v != NONE else v for i, v in enumerate(dims))


def _touch_latest(
    state: AccountState, etype: str, key: str, us: int, tie: int, values: tuple[Any, ...]
) -> None:
    entries = state.latest[etype]
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = [us, tie, *([-1, 0, None] * len(values))]
    elif us > entry[0] or (us == entry[0] and tie > entry[1]):
        entry[0] = us
        entry[1] = tie
    for i, value in enumerate(values):
        if value is None:
            continue
        at = 2 + 3 * i
        if entry[at] < 0 or us > entry[at] or (us == entry[at] and tie > entry[at + 1]):
            entry[at] = us
            entry[at + 1] = tie
            entry[at + 2] = value


def _set_user(state: AccountState, key: str, user: str, bit: int) -> None:
    masks = state.users.get(key)
    if masks is None:
        masks = state.users[key] = {}
    current = masks.get(user)
    if current is not None:
        masks[user] = format(int(current, 16) | bit, "x")
    elif len(masks) < MAX_USERS_PER_KEY:
        masks[user] = format(bit, "x")


def _apply_usage(state: AccountState, event: UsageEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    key, cols, i = _bucket(state, "usage", p.metric + KEY_SEP + (p.feature or NONE), day)
    cols[1][i] += 1
    # quantity is kept as its excess over 1 in millionths: 0 for the usual quantity-less event
    cols[2][i] += round(p.quantity * QUANTITY_SCALE) - QUANTITY_SCALE
    if p.user_id is not None:
        assert state.newest_day is not None
        bit = 1 << (day - state.newest_day + RETENTION_DAYS - 1)
        _set_user(state, ANY_USAGE, p.user_id, bit)
        _set_user(state, key.split(KEY_SEP)[0] + KEY_SEP + ANY_USAGE, p.user_id, bit)
    _touch_latest(state, "usage", key, us, tie, (p.quantity,))


def _sentiment(*texts: str | None) -> int | None:
    present = [t for t in texts if t]
    if not present:
        return None
    return round(compound(" ".join(present)) * SENTIMENT_SCALE)


def _apply_ticket(state: AccountState, event: TicketEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    raw_key = p.status + KEY_SEP + p.priority + KEY_SEP + (p.category or NONE)
    key, cols, i = _bucket(state, "ticket", raw_key, day)
    cols[1][i] += 1
    if p.csat is not None:
        cols[2][i] += p.csat
        cols[3][i] += 1
    if p.first_response_seconds is not None:
        cols[4][i] += p.first_response_seconds
        cols[5][i] += 1
    sentiment = _sentiment(p.text)
    if sentiment is not None:
        cols[6][i] += sentiment
        cols[7][i] += 1
    _touch_latest(state, "ticket", key, us, tie, (p.csat, p.first_response_seconds))
    ticket = state.tickets.get(p.ticket_id)
    if ticket is None:
        state.tickets[p.ticket_id] = [p.status, p.priority, us, tie, us]
        if len(state.tickets) > MAX_TICKETS:
            _evict(state.tickets, lambda v: (v[0] in OPEN_TICKET_STATUSES, v[2], v[3]))
    else:
        if us > ticket[2] or (us == ticket[2] and tie > ticket[3]):
            ticket[0], ticket[1], ticket[2], ticket[3] = p.status, p.priority, us, tie
        if us < ticket[4]:
            ticket[4] = us


def _evict(items: dict[str, list[Any]], rank: Any) -> None:
    del items[min(items, key=lambda k: rank(items[k]))]


def _apply_billing(state: AccountState, event: BillingEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    key, cols, i = _bucket(state, "billing", p.status + KEY_SEP + p.currency, day)
    cols[1][i] += 1
    cols[2][i] += p.amount_cents
    _touch_latest(state, "billing", key, us, tie, (p.amount_cents,))
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
    if us > invoice[1] or (us == invoice[1] and tie > invoice[2]):
        invoice[0], invoice[1], invoice[2] = p.status, us, tie
    if due_us is not None and (
        invoice[4] < 0 or us > invoice[4] or (us == invoice[4] and tie > invoice[5])
    ):
        invoice[3], invoice[4], invoice[5] = due_us, us, tie


def _apply_email(state: AccountState, event: EmailEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    key, cols, i = _bucket(state, "email", p.direction + KEY_SEP + p.event, day)
    cols[1][i] += 1
    sentiment = _sentiment(p.subject, p.text)
    if sentiment is not None:
        cols[2][i] += sentiment
        cols[3][i] += 1
    _touch_latest(state, "email", key, us, tie, ())


def _apply_feedback(state: AccountState, event: FeedbackEvent, us: int, tie: int, day: int) -> None:
    p = event.payload
    key, cols, i = _bucket(state, "feedback", p.survey, day)
    cols[1][i] += 1
    cols[2][i] += p.score
    sentiment = _sentiment(p.comment)
    if sentiment is not None:
        cols[3][i] += sentiment
        cols[4][i] += 1
    _touch_latest(state, "feedback", key, us, tie, (p.score,))
