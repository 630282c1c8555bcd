"""The metric spec language: a small, typed catalogue of what an indicator may measure.

A metric is a mapping with a ``kind`` (see docs/health-models.md, "Metric catalogue")::

    {kind: distinct, event: usage, field: user_id, window: 30d, where: {metric: login}}

No user code is evaluated: every kind is answered from the per-account state's generic buckets.
Structural rules (types, unknown fields, unknown kinds) are checked here by pydantic; rules that
relate fields to each other (a field that the event type has, a filter value it allows) are
checked by :mod:`healthscore.engine.validation`, which reports them with exact paths.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from healthscore.engine.catalogue import TrackedEvent

_WINDOW = re.compile(r"^([0-9]{1,4})d$")


def _parse_days(value: Any) -> Any:
    if isinstance(value, str):
        match = _WINDOW.match(value.strip())
        if match is None:
            raise ValueError("must be a number of days such as 7d, 30d or 90d")
        return int(match.group(1))
    if isinstance(value, bool):
        raise ValueError("must be a number of days such as 7d, 30d or 90d")
    return value


def _normalise_where(value: Any) -> Any:
    """``{metric: login}`` and ``{priority: [high, urgent]}`` both become tuples of strings."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        items = item if isinstance(item, list | tuple) else [item]
        out[key] = [
            str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in items
        ]
    return out


Days = Annotated[
    int,
    BeforeValidator(_parse_days),
    Field(ge=1, le=9999),
    PlainSerializer(lambda days: f"{days}d", return_type=str),
]
Where = Annotated[dict[str, tuple[str, ...]], BeforeValidator(_normalise_where)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def describe(self) -> str:
        raise NotImplementedError


def _where_text(where: dict[str, tuple[str, ...]]) -> str:
    if not where:
        return ""
    parts = [f"{k}={'|'.join(v)}" for k, v in sorted(where.items())]
    return " where " + ",".join(parts)


class CountMetric(_Spec):
    """Number of events of a type in the window."""

    kind: Literal["count"]
    event: TrackedEvent
    window: Days
    where: Where = Field(default_factory=dict)

    def describe(self) -> str:
        return f"count {self.event} {self.window}d{_where_text(self.where)}"


class _FieldWindowMetric(_Spec):
    """An aggregate of a payload field over the events of a type in a window."""

    kind: str
    event: TrackedEvent
    field: str
    window: Days
    where: Where = Field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind} {self.event}.{self.field} {self.window}d{_where_text(self.where)}"


class SumMetric(_FieldWindowMetric):
    """Sum of a numeric payload field in the window."""

    kind: Literal["sum"]


class AvgMetric(_FieldWindowMetric):
    """Mean of a numeric payload field over the events in the window that carry it."""

    kind: Literal["avg"]


class DistinctMetric(_FieldWindowMetric):
    """Number of distinct values of a field (e.g. ``user_id``, ``feature``) in the window."""

    kind: Literal["distinct"]


class LatestMetric(_Spec):
    """The field's value on the newest matching event (optionally no older than ``max_age``)."""

    kind: Literal["latest"]
    event: TrackedEvent
    field: str
    where: Where = Field(default_factory=dict)
    max_age: Days | None = None

    def describe(self) -> str:
        age = f" max_age {self.max_age}d" if self.max_age is not None else ""
        return f"latest {self.event}.{self.field}{_where_text(self.where)}{age}"


class DaysSinceMetric(_Spec):
    """Whole UTC days between the newest matching event and ``as_of``."""

    kind: Literal["days_since"]
    event: TrackedEvent
    where: Where = Field(default_factory=dict)

    def describe(self) -> str:
        return f"days_since {self.event}{_where_text(self.where)}"


class SentimentMetric(_Spec):
    """Mean VADER compound score (-1..1) of texts in the window (every text event if no event)."""

    kind: Literal["sentiment"]
    event: Literal["ticket", "email", "feedback"] | None = None
    window: Days
    where: Where = Field(default_factory=dict)

    def describe(self) -> str:
        return f"sentiment {self.event or 'all'} {self.window}d{_where_text(self.where)}"


class OpenTicketsMetric(_Spec):
    """Tickets whose latest status is opened, updated or reopened."""

    kind: Literal["open_tickets"]
    priority: Annotated[
        tuple[str, ...], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)
    ] = ()
    min_age: Days | None = None

    def describe(self) -> str:
        prio = f" priority={'|'.join(self.priority)}" if self.priority else ""
        age = f" min_age {self.min_age}d" if self.min_age is not None else ""
        return f"open_tickets{prio}{age}"


class OverdueInvoicesMetric(_Spec):
    """Invoices whose latest status is overdue or failed, or issued and past ``due_at``."""

    kind: Literal["overdue_invoices"]

    def describe(self) -> str:
        return "overdue_invoices"


class LicensesMetric(_Spec):
    """The profile's ``licenses``."""

    kind: Literal["licenses"]

    def describe(self) -> str:
        return "licenses"


class DaysToRenewalMetric(_Spec):
    """Days from ``as_of`` to the profile's ``renewal_date`` (negative once it has passed)."""

    kind: Literal["days_to_renewal"]

    def describe(self) -> str:
        return "days_to_renewal"


class RatioMetric(_Spec):
    """``numerator / denominator * scale``; no value when either is missing or the divisor is 0."""

    kind: Literal["ratio"]
    numerator: Metric
    denominator: Metric
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0

    def describe(self) -> str:
        scale = f" x{self.scale:g}" if self.scale != 1 else ""
        return f"ratio ({self.numerator.describe()}) / ({self.denominator.describe()}){scale}"


class ChangeMetric(_Spec):
    """This window vs the window before it: percent change (or absolute difference)."""

    kind: Literal["change"]
    of: Metric
    mode: Literal["percent", "absolute"] = "percent"

    def describe(self) -> str:
        return f"change {self.mode} ({self.of.describe()})"


Metric = Annotated[
    CountMetric
    | SumMetric
    | AvgMetric
    | DistinctMetric
    | LatestMetric
    | DaysSinceMetric
    | SentimentMetric
    | OpenTicketsMetric
    | OverdueInvoicesMetric
    | LicensesMetric
    | DaysToRenewalMetric
    | RatioMetric
    | ChangeMetric,
    Field(discriminator="kind"),
]

METRIC_KINDS: tuple[str, ...] = (
    "count",
    "sum",
    "avg",
    "distinct",
    "latest",
    "days_since",
    "sentiment",
    "open_tickets",
    "overdue_invoices",
    "licenses",
    "days_to_renewal",
    "ratio",
    "change",
)
# Kinds whose value comes from a window ending at as_of and can therefore be shifted back for
# `change`.
WINDOWED_KINDS: frozenset[str] = frozenset({"count", "sum", "avg", "distinct", "sentiment"})

RatioMetric.model_rebuild()
ChangeMetric.model_rebuild()
