"""Metric evaluation: each metric spec compiles once into a function of (context, end day).

A windowed metric covers the ``window`` UTC days ending with the end day (the day of ``as_of``
for the indicator itself; the day before the current window for the previous window of a
``change``). Window aggregates are memoised per score call, so indicators sharing a filter and a
window read the buckets once.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any, Final

from healthscore.engine.catalogue import (
    LAYOUTS,
    NONE,
    OPEN_TICKET_STATUSES,
    OVERDUE_INVOICE_STATUSES,
    SENTIMENT_SCALE,
    TEXT_EVENTS,
    NumericField,
    TrackedEvent,
)
from healthscore.engine.metrics import (
    AvgMetric,
    ChangeMetric,
    CountMetric,
    DaysSinceMetric,
    DaysToRenewalMetric,
    DistinctMetric,
    LatestMetric,
    LicensesMetric,
    Metric,
    OpenTicketsMetric,
    OverdueInvoicesMetric,
    RatioMetric,
    SentimentMetric,
    SumMetric,
)
from healthscore.engine.state import (
    ANY_USAGE,
    DAY_US,
    KEY_SEP,
    AccountState,
    to_micros,
)

# A compiled filter: (dimension position, allowed values) pairs; empty matches every key.
Filter = tuple[tuple[int, frozenset[str]], ...]


class Context:
    """One evaluation: the state, the moment scored, and the per-call memo."""

    __slots__ = ("as_of", "as_of_us", "day", "dims", "memo", "state")

    def __init__(self, state: AccountState, as_of: dt.datetime) -> None:
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware")
        self.state = state
        self.as_of = as_of
        self.as_of_us = to_micros(as_of)
        self.day = self.as_of_us // DAY_US
        self.memo: dict[tuple[object, ...], Any] = {}
        self.dims: dict[str, list[str]] = {}

    def matches(self, key: str, flt: Filter) -> bool:
        dims = self.dims.get(key)
        if dims is None:
            dims = self.dims[key] = key.split(KEY_SEP)
        # A plain loop: all() over a generator cost twice as much on this hot path.
        for pos, allowed in flt:  # noqa: SIM110
            if dims[pos] not in allowed:
                return False
        return True

    def user_masks(self, key: str) -> dict[str, int]:
        memo_key = ("users", key)
        found: dict[str, int] | None = self.memo.get(memo_key)
        if found is None:
            raw = self.state.users.get(key, {})
            found = self.memo[memo_key] = {u: int(h, 16) for u, h in raw.items()}
        return found


Evaluator = Callable[[Context, int], float | None]
_NO_VALUE: Final = None


def compile_metric(metric: Metric) -> Evaluator:
    """A function giving the metric's value at (context, end day); None when there is no data."""
    match metric:
        case CountMetric():
            flt = _filter(metric.event, metric.where)
            return _windowed(metric.event, flt, metric.window, None, count_only=True)
        case SumMetric():
            num = LAYOUTS[metric.event].numeric[metric.field]
            flt = _filter(metric.event, metric.where)
            return _windowed(metric.event, flt, metric.window, num, count_only=False)
        case AvgMetric():
            num = LAYOUTS[metric.event].numeric[metric.field]
            flt = _filter(metric.event, metric.where)
            return _windowed(metric.event, flt, metric.window, num, count_only=False, mean=True)
        case DistinctMetric():
            return _distinct(metric)
        case SentimentMetric():
            return _sentiment(metric)
        case LatestMetric():
            return _latest(metric)
        case DaysSinceMetric():
            return _days_since(metric)
        case OpenTicketsMetric():
            return _open_tickets(metric)
        case OverdueInvoicesMetric():
            return _overdue_invoices
        case LicensesMetric():
            return _licenses
        case DaysToRenewalMetric():
            return _days_to_renewal
        case RatioMetric():
            return _ratio(metric)
        case ChangeMetric():
            return _change(metric)
    raise TypeError(f"unsupported metric {metric!r}")  # pragma: no cover - union is exhaustive


def metric_window(metric: Metric) -> int:
    """The longest window a (possibly composite) metric reads; 0 if it reads none."""
    match metric:
        case RatioMetric():
            return max(metric_window(metric.numerator), metric_window(metric.denominator))
        case ChangeMetric():
            return 2 * metric_window(metric.of)
    return int(getattr(metric, "window", 0) or 0)


def _filter(event: str, where: dict[str, tuple[str, ...]]) -> Filter:
    dims = LAYOUTS[event].dims  # type: ignore[index]
    return tuple((dims.index(name), frozenset(values)) for name, values in sorted(where.items()))


def aggregate(
    ctx: Context, event: str, flt: Filter, start: int, end: int, columns: tuple[int, ...]
) -> list[int]:
    """Sums of ``columns`` over the keys matching ``flt`` and the days ``start..end``."""
    memo_key = (event, flt, start, end, columns)
    cached: list[int] | None = ctx.memo.get(memo_key)
    if cached is not None:
        return cached
    totals = [0] * len(columns)
    for key, series in ctx.state.series[event].items():
        if flt and not ctx.matches(key, flt):
            continue
        days = series[0]
        lo, hi = bisect_left(days, start), bisect_right(days, end)
        if lo < hi:
            for j, c in enumerate(columns):
                totals[j] += sum(series[c + 1][lo:hi])
    ctx.memo[memo_key] = totals
    return totals


def _windowed(
    event: TrackedEvent,
    flt: Filter,
    window: int,
    numeric: NumericField | None,
    *,
    count_only: bool,
    mean: bool = False,
) -> Evaluator:
    if count_only or numeric is None:
        columns: tuple[int, ...] = (0,)
    else:
        columns = (numeric.sum_column, numeric.count_column)

    def evaluate(ctx: Context, end: int) -> float | None:
        if event not in ctx.state.type_seen:
            return _NO_VALUE  # no event of this type ever: the source is not connected
        totals = aggregate(ctx, event, flt, end - window + 1, end, columns)
        if numeric is None:
            return float(totals[0])
        column_sum, count = totals
        if mean:
            return numeric.total(column_sum, count) / count if count else _NO_VALUE
        return numeric.total(column_sum, count)

    return evaluate


def _user_keys(flt: Filter) -> list[str]:
    """The users keys whose union answers a filter (only ``metric`` filters are allowed)."""
    if not flt:
        return [ANY_USAGE]
    return [m + KEY_SEP + ANY_USAGE for m in sorted(flt[0][1])]


def _distinct(metric: DistinctMetric) -> Evaluator:
    event, window = metric.event, metric.window
    flt = _filter(event, metric.where)
    layout = LAYOUTS[event]
    if metric.field == "user_id":

        def users(ctx: Context, end: int) -> float | None:
            state = ctx.state
            if event not in state.type_seen:
                return _NO_VALUE
            base = state.base_day
            if base is None:
                return 0.0
            lo, hi = max(end - window + 1 - base, 0), end - base
            if hi < lo:
                return 0.0
            wmask = ((1 << (hi - lo + 1)) - 1) << lo
            keys = _user_keys(flt)
            if len(keys) == 1:
                masks = ctx.user_masks(keys[0])
                return float(sum(1 for m in masks.values() if m & wmask))
            seen: set[str] = set()
            for key in keys:
                seen.update(u for u, m in ctx.user_masks(key).items() if m & wmask)
            return float(len(seen))

        return users
    pos = layout.dims.index(metric.field)

    def values(ctx: Context, end: int) -> float | None:
        state = ctx.state
        if event not in state.type_seen:
            return _NO_VALUE
        start = end - window + 1
        found: set[str] = set()
        for key, series in state.series[event].items():
            if flt and not ctx.matches(key, flt):
                continue
            value = key.split(KEY_SEP)[pos]
            if value == NONE or value in found:
                continue
            days = series[0]
            at = bisect_left(days, start)
            if at < len(days) and days[at] <= end:
                found.add(value)
        return float(len(found))

    return values


def _sentiment(metric: SentimentMetric) -> Evaluator:
    events: tuple[TrackedEvent, ...] = (metric.event,) if metric.event else TEXT_EVENTS
    parts = []
    for e in events:
        cols = LAYOUTS[e].sentiment
        assert cols is not None
        parts.append((e, _filter(e, metric.where), cols))
    window = metric.window

    def evaluate(ctx: Context, end: int) -> float | None:
        total = count = 0
        for event, flt, cols in parts:
            if event not in ctx.state.type_seen:
                continue
            part_sum, part_count = aggregate(ctx, event, flt, end - window + 1, end, cols)
            total += part_sum
            count += part_count
        return total / count / SENTIMENT_SCALE if count else _NO_VALUE

    return evaluate


def _latest(metric: LatestMetric) -> Evaluator:
    event, max_age = metric.event, metric.max_age
    flt = _filter(event, metric.where)
    at = 2 + 3 * list(LAYOUTS[event].numeric).index(metric.field)

    def evaluate(ctx: Context, end: int) -> float | None:
        best: tuple[int, int] | None = None
        value: float | None = None
        for key, entry in ctx.state.latest[event].items():
            if entry[at] < 0 or (flt and not ctx.matches(key, flt)):
                continue
            stamp = (entry[at], entry[at + 1])
            if best is None or stamp > best:
                best, value = stamp, entry[at + 2]
        if best is None or (max_age is not None and ctx.day - best[0] // DAY_US >= max_age):
            return _NO_VALUE
        return float(value) if value is not None else _NO_VALUE

    return evaluate


def _days_since(metric: DaysSinceMetric) -> Evaluator:
    event = metric.event
    flt = _filter(event, metric.where)

    def evaluate(ctx: Context, end: int) -> float | None:
        newest: int | None = None
        for key, entry in ctx.state.latest[event].items():
            if flt and not ctx.matches(key, flt):
                continue
            if newest is None or entry[0] > newest:
                newest = entry[0]
        if newest is None:
            return _NO_VALUE
        return float(max(ctx.day - newest // DAY_US, 0))

    return evaluate


def _open_tickets(metric: OpenTicketsMetric) -> Evaluator:
    priorities = frozenset(metric.priority)
    min_age = metric.min_age

    def evaluate(ctx: Context, end: int) -> float | None:
        if "ticket" not in ctx.state.type_seen:
            return _NO_VALUE
        count = 0
        for status, priority, _us, _tie, first_us in ctx.state.tickets.values():
            if status not in OPEN_TICKET_STATUSES:
                continue
            if priorities and priority not in priorities:
                continue
            if min_age is not None and ctx.day - first_us // DAY_US < min_age:
                continue
            count += 1
        return float(count)

    return evaluate


def invoice_overdue(invoice: list[object], as_of_us: int) -> bool:
    status, due_us = invoice[0], invoice[3]
    if status in OVERDUE_INVOICE_STATUSES:
        return True
    return status == "issued" and isinstance(due_us, int) and due_us < as_of_us


def _overdue_invoices(ctx: Context, end: int) -> float | None:
    if "billing" not in ctx.state.type_seen:
        return _NO_VALUE
    return float(
        sum(1 for inv in ctx.state.invoices.values() if invoice_overdue(inv, ctx.as_of_us))
    )


def _licenses(ctx: Context, end: int) -> float | None:
    licenses = ctx.state.profile.licenses
    return float(licenses) if licenses is not None else _NO_VALUE


def _days_to_renewal(ctx: Context, end: int) -> float | None:
    renewal = ctx.state.profile.renewal_date
    if renewal is None:
        return _NO_VALUE
    return float((renewal - ctx.as_of.astimezone(dt.UTC).date()).days)


def _ratio(metric: RatioMetric) -> Evaluator:
    numerator = compile_metric(metric.numerator)
    denominator = compile_metric(metric.denominator)
    scale = metric.scale

    def evaluate(ctx: Context, end: int) -> float | None:
        den = denominator(ctx, end)
        if not den:  # None or 0
            return _NO_VALUE
        num = numerator(ctx, end)
        return None if num is None else num / den * scale

    return evaluate


def _change(metric: ChangeMetric) -> Evaluator:
    inner = compile_metric(metric.of)
    window = metric_window(metric.of)
    percent = metric.mode == "percent"

    def evaluate(ctx: Context, end: int) -> float | None:
        current = inner(ctx, end)
        previous = inner(ctx, end - window)
        if current is None or previous is None:
            return _NO_VALUE
        if not percent:
            return current - previous
        if previous == 0:
            return _NO_VALUE  # growth from nothing has no percentage
        return (current - previous) / abs(previous) * 100.0

    return evaluate
