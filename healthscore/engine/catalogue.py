"""What the per-account state tracks for each event type, independently of any health model.

Every event (except ``account``) lands in a daily bucket keyed by its *dimensions* (the payload
fields a metric may filter or count distinct values of) and adds to a fixed vector of integer
*columns* (event count, sums of numeric fields, sentiment). Integers keep sums exact, so the same
events in any order give the same state. The metric catalogue answers only from these columns,
which is why the state can score any model, including one published later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TrackedEvent = Literal["usage", "ticket", "billing", "email", "feedback"]
TRACKED_EVENTS: Final[tuple[TrackedEvent, ...]] = (
    "usage",
    "ticket",
    "billing",
    "email",
    "feedback",
)
TEXT_EVENTS: Final[tuple[TrackedEvent, ...]] = ("ticket", "email", "feedback")

# Days of event time the state keeps. The longest window is 180 days and a `change` compares two
# windows of up to 90 days each, so 180 days answer every metric in the catalogue.
RETENTION_DAYS: Final = 180
MAX_WINDOW_DAYS: Final = 180
MAX_CHANGE_WINDOW_DAYS: Final = 90

# Fixed-point scales for non-integer inputs (sums stay exact integers).
QUANTITY_SCALE: Final = 1_000_000  # usage quantity in millionths
SENTIMENT_SCALE: Final = 10_000  # VADER compound scores have four decimals


@dataclass(frozen=True)
class NumericField:
    """A numeric payload field: where its sum and its count of present values live."""

    sum_column: int
    count_column: int
    scale: int
    per_event: int = 0  # stored as the excess over this many scaled units per event

    def total(self, column_sum: int, count: int) -> float:
        return (column_sum + count * self.per_event) / self.scale


@dataclass(frozen=True)
class EventLayout:
    dims: tuple[str, ...]  # payload fields forming the bucket key, in key order
    enum_values: dict[str, tuple[str, ...]]  # allowed values of closed dimensions
    columns: int  # length of the per-day vector; column 0 is the event count
    numeric: dict[str, NumericField]
    sentiment: tuple[int, int] | None  # (sum column, count column)
    distinct_user: bool  # usage keeps per-user day masks for distinct user_id
    max_keys: int  # bound on distinct dimension keys per account


TICKET_STATUSES: Final = ("opened", "updated", "resolved", "reopened", "closed")
TICKET_PRIORITIES: Final = ("low", "normal", "high", "urgent")
OPEN_TICKET_STATUSES: Final = frozenset({"opened", "updated", "reopened"})
INVOICE_STATUSES: Final = ("issued", "paid", "overdue", "failed", "refunded", "disputed")
OVERDUE_INVOICE_STATUSES: Final = frozenset({"overdue", "failed"})
SETTLED_INVOICE_STATUSES: Final = frozenset({"paid", "refunded"})

LAYOUTS: Final[dict[TrackedEvent, EventLayout]] = {
    "usage": EventLayout(
        dims=("metric", "feature"),
        enum_values={},
        columns=2,
        numeric={"quantity": NumericField(1, 0, QUANTITY_SCALE, per_event=QUANTITY_SCALE)},
        sentiment=None,
        distinct_user=True,
        max_keys=256,
    ),
    "ticket": EventLayout(
        dims=("status", "priority", "category"),
        enum_values={"status": TICKET_STATUSES, "priority": TICKET_PRIORITIES},
        columns=7,
        numeric={
            "csat": NumericField(1, 2, 1),
            "first_response_seconds": NumericField(3, 4, 1),
        },
        sentiment=(5, 6),
        distinct_user=False,
        max_keys=256,
    ),
    "billing": EventLayout(
        dims=("status", "currency"),
        enum_values={"status": INVOICE_STATUSES},
        columns=2,
        numeric={"amount_cents": NumericField(1, 0, 1)},
        sentiment=None,
        distinct_user=False,
        max_keys=64,
    ),
    "email": EventLayout(
        dims=("direction", "event"),
        enum_values={
            "direction": ("inbound", "outbound"),
            "event": (
                "sent",
                "delivered",
                "opened",
                "clicked",
                "replied",
                "bounced",
                "unsubscribed",
            ),
        },
        columns=3,
        numeric={},
        sentiment=(1, 2),
        distinct_user=False,
        max_keys=64,
    ),
    "feedback": EventLayout(
        dims=("survey",),
        enum_values={"survey": ("nps", "csat", "ces", "csm_pulse")},
        columns=4,
        numeric={"score": NumericField(1, 0, 1)},
        sentiment=(2, 3),
        distinct_user=False,
        max_keys=16,
    ),
}

# A free-form dimension value that would exceed an event type's key bound is folded into this
# value (it cannot collide with a real one: labels never contain "~").
OTHER: Final = "~other"
# Key dimension for an absent optional field (e.g. a usage event without a feature).
NONE: Final = ""

FOLDED_KEYS: Final = 32  # extra keys for values folded into OTHER, beyond an event type's max_keys
MAX_USERS_PER_KEY: Final = 2_000  # distinct user ids remembered per usage key
MAX_TICKETS: Final = 1_000  # tickets remembered by id (open ones are evicted last)
MAX_INVOICES: Final = 500  # invoices remembered by id (unsettled ones are evicted last)
SEEN_EVENT_IDS: Final = 1_024  # most recently accepted event ids remembered for de-duplication


def distinct_fields(event: TrackedEvent) -> tuple[str, ...]:
    layout = LAYOUTS[event]
    return (*layout.dims, "user_id") if layout.distinct_user else layout.dims
