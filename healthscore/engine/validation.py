"""``parse_model``: YAML or JSON in, a :class:`HealthModel` out, or every problem at once.

Validation runs in two passes over the same document so that one bad indicator never hides the
problems of another:

1. pydantic checks the structure (types, ranges, unknown fields, unknown metric kinds); its errors
   are rewritten into ``categories[1].indicators[0].good: must be ...`` paths;
2. the cross-field rules (thresholds against direction, level shares, metric fields and filters,
   duplicate names, total weight, band coverage) run on every part that passed pass 1 on its own.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from healthscore.engine.catalogue import (
    LAYOUTS,
    MAX_CHANGE_WINDOW_DAYS,
    MAX_WINDOW_DAYS,
    TICKET_PRIORITIES,
    distinct_fields,
)
from healthscore.engine.errors import ModelError, ModelInvalid
from healthscore.engine.metrics import (
    METRIC_KINDS,
    WINDOWED_KINDS,
    AvgMetric,
    ChangeMetric,
    CountMetric,
    DaysSinceMetric,
    DistinctMetric,
    LatestMetric,
    Metric,
    OpenTicketsMetric,
    RatioMetric,
    SentimentMetric,
    SumMetric,
)
from healthscore.engine.model import Band, HealthModel, Indicator

Loc = tuple[str | int, ...]

_METRIC_HOLDERS = frozenset({"metric", "numerator", "denominator", "of"})
_BANDS_ADAPTER: TypeAdapter[tuple[Band, ...]] = TypeAdapter(tuple[Band, ...])
_STATUS_ORDER = {"red": 0, "amber": 1, "green": 2}


def parse_model(data: Mapping[str, Any] | str) -> HealthModel:
    """Validate a health-model document (a mapping, or YAML / JSON text).

    Raises :class:`ModelInvalid` listing every problem, each with its exact path.
    """
    raw: Any = _load_text(data) if isinstance(data, str) else data
    if not isinstance(raw, Mapping):
        raise ModelInvalid([ModelError("", "a health model must be a mapping of fields")])
    errors: list[tuple[Loc, str]] = []
    model: HealthModel | None = None
    try:
        model = HealthModel.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_without_echoes(list(_convert(exc.errors()))))
    errors.extend(_semantic_errors(raw))
    if errors:
        unique = dict.fromkeys((loc, msg) for loc, msg in errors)
        ordered = sorted(unique, key=lambda item: _sort_key(item[0]))
        raise ModelInvalid([ModelError(format_path(loc), msg) for loc, msg in ordered])
    assert model is not None
    return model


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _sort_key(loc: Loc) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in loc)


def _load_text(text: str) -> Any:
    if text.lstrip().startswith(("{", "[")):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # YAML is a superset of JSON and reports the position better
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ModelInvalid([ModelError("", f"not valid YAML or JSON{where}: {problem}")]) from None


# -- pass 1: pydantic errors as paths --------------------------------------------------------


def _convert(details: list[ErrorDetails]) -> Iterator[tuple[Loc, str]]:
    for err in details:
        loc: list[str | int] = []
        for part in err["loc"]:
            # A discriminated union puts the tag in the location: metric.count.window.
            if (
                isinstance(part, str)
                and part in METRIC_KINDS
                and loc
                and loc[-1] in _METRIC_HOLDERS
            ):
                continue
            loc.append(part)
        kind = err["type"]
        if kind == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag", "")
            yield (
                (*loc, "kind"),
                f"unknown metric kind {tag!r}; expected one of {', '.join(METRIC_KINDS)}",
            )
            continue
        if kind == "union_tag_not_found":
            yield (*loc, "kind"), f"is required (one of {', '.join(METRIC_KINDS)})"
            continue
        yield tuple(loc), _message(err)


def _without_echoes(errors: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    """Drop a list's "too short" error when it only echoes failures of its own items."""
    deeper = {loc[:i] for loc, _ in errors for i in range(len(loc))}
    return [
        (loc, msg)
        for loc, msg in errors
        if not (msg.startswith("must have at least") and loc in deeper)
    ]


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    last = err["loc"][-1] if err["loc"] else ""
    match kind:
        case "missing":
            return "is required"
        case "extra_forbidden":
            return "is not a known field"
        case "literal_error":
            expected = str(ctx.get("expected", "")).replace("'", "")
            return f"must be one of {expected.replace(' or ', ', ')}"
        case "greater_than":
            return f"must be greater than {_num(ctx['gt'])}"
        case "greater_than_equal":
            return f"must be at least {_num(ctx['ge'])}"
        case "less_than":
            return f"must be less than {_num(ctx['lt'])}"
        case "less_than_equal":
            return f"must be at most {_num(ctx['le'])}"
        case "string_pattern_mismatch" if last == "id":
            return "must be a slug: lowercase letters, digits, '-' or '_' (at most 64)"
        case "string_pattern_mismatch":
            return f"must match {ctx.get('pattern')}"
        case "string_too_short":
            return "must not be empty"
        case "string_too_long":
            return f"must be at most {ctx.get('max_length')} characters"
        case "too_short":
            return f"must have at least {ctx.get('min_length')} item(s)"
        case "too_long":
            return f"must have at most {ctx.get('max_length')} items"
        case "float_type" | "float_parsing" | "int_from_float":
            return "must be a number"
        case "int_type" | "int_parsing":
            return "must be an integer"
        case "finite_number":
            return "must be a finite number"
        case "bool_type" | "bool_parsing":
            return "must be true or false"
        case "string_type":
            return "must be a string"
        case "model_type" | "model_attributes_type" | "dict_type":
            return "must be a mapping"
        case "tuple_type" | "list_type":
            return "must be a list"
        case "value_error":
            return str(err["msg"]).removeprefix("Value error, ")
    msg = str(err["msg"])
    return msg[:1].lower() + msg[1:]


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- pass 2: cross-field rules ---------------------------------------------------------------


def _semantic_errors(raw: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    if "bands" in raw:
        try:
            bands = _BANDS_ADAPTER.validate_python(raw["bands"])
        except ValidationError:
            pass
        else:
            yield from _band_errors(bands)
    categories = raw.get("categories")
    if not isinstance(categories, list | tuple):
        return
    category_names: dict[str, int] = {}
    indicator_names: dict[str, Loc] = {}
    weights: list[float] = []
    weights_valid = True
    for ci, category in enumerate(categories):
        if not isinstance(category, Mapping):
            weights_valid = False
            continue
        cloc: Loc = ("categories", ci)
        name = category.get("name")
        if isinstance(name, str) and name.strip():
            key = _name_key(name)
            if key in category_names:
                first = category_names[key]
                yield (
                    (*cloc, "name"),
                    f"duplicate category name {name!r} (also categories[{first}])",
                )
            else:
                category_names[key] = ci
        weight: Any = category.get("weight")
        if _is_number(weight) and weight >= 0:
            weights.append(float(weight))
        else:
            weights_valid = False
        indicators = category.get("indicators")
        if not isinstance(indicators, list | tuple):
            continue
        for ii, raw_indicator in enumerate(indicators):
            if not isinstance(raw_indicator, Mapping):
                continue
            iloc: Loc = (*cloc, "indicators", ii)
            iname = raw_indicator.get("name")
            if isinstance(iname, str) and iname.strip():
                key = _name_key(iname)
                if key in indicator_names:
                    first_loc = format_path(indicator_names[key])
                    yield (
                        (*iloc, "name"),
                        f"duplicate indicator name {iname!r} (also {first_loc})",
                    )
                else:
                    indicator_names[key] = iloc
            try:
                indicator = Indicator.model_validate(raw_indicator)
            except ValidationError:
                continue  # pass 1 reports it
            yield from _indicator_errors(indicator, iloc)
    if weights_valid and weights and math.fsum(weights) <= 0:
        yield ("categories",), "the total weight of the categories must be greater than 0"


def _name_key(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip()).casefold()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _band_errors(bands: tuple[Band, ...]) -> Iterator[tuple[Loc, str]]:
    seen: dict[str, int] = {}
    for i, band in enumerate(bands):
        if band.status in seen:
            yield (
                ("bands", i, "status"),
                f"duplicate band {band.status!r} (also bands[{seen[band.status]}])",
            )
        seen.setdefault(band.status, i)
        if band.min >= band.max:
            yield ("bands", i, "max"), f"must be greater than min ({_num(band.min)})"
    if len(seen) != len(bands):
        return
    order = sorted(range(len(bands)), key=lambda i: bands[i].min)
    statuses = [_STATUS_ORDER[bands[i].status] for i in order]
    if statuses != sorted(statuses):
        yield ("bands",), "bands must run from red (lowest scores) through amber to green"
    first, last = bands[order[0]], bands[order[-1]]
    if first.min != 0:
        yield ("bands", order[0], "min"), "the lowest band must start at 0"
    if last.max != 100:
        yield ("bands", order[-1], "max"), "the highest band must end at 100"
    for a, b in itertools.pairwise(order):
        if bands[a].max < bands[b].min:
            gap = f"{_num(bands[a].max)} to {_num(bands[b].min)}"
            yield ("bands", b, "min"), f"leaves scores from {gap} without a band"
        elif bands[a].max > bands[b].min:
            yield ("bands", b, "min"), f"overlaps bands[{a}] (which ends at {_num(bands[a].max)})"


def _indicator_errors(indicator: Indicator, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if indicator.direction == "higher_is_better" and not indicator.good > indicator.average:
        yield (
            (*loc, "good"),
            f"must be greater than average ({_num(indicator.average)}) "
            "when direction is higher_is_better",
        )
    if indicator.direction == "lower_is_better" and not indicator.good < indicator.average:
        yield (
            (*loc, "good"),
            f"must be less than average ({_num(indicator.average)}) "
            "when direction is lower_is_better",
        )
    shares = indicator.shares
    if not shares.good >= shares.average:
        yield (*loc, "shares", "average"), f"must not exceed shares.good ({_num(shares.good)})"
    if not shares.average >= shares.poor:
        yield (*loc, "shares", "poor"), f"must not exceed shares.average ({_num(shares.average)})"
    yield from _metric_errors(indicator.metric, (*loc, "metric"), max_window=MAX_WINDOW_DAYS)


def _metric_errors(metric: Metric, loc: Loc, *, max_window: int) -> Iterator[tuple[Loc, str]]:
    window = getattr(metric, "window", None)
    if window is not None and window > max_window:
        why = " inside a change" if max_window < MAX_WINDOW_DAYS else ""
        yield (*loc, "window"), f"must be at most {max_window}d{why}"
    match metric:
        case SumMetric() | AvgMetric() | LatestMetric():
            numeric = LAYOUTS[metric.event].numeric
            if metric.field not in numeric:
                if numeric:
                    allowed = ", ".join(numeric)
                    msg = (
                        f"{metric.field!r} is not a numeric field of {metric.event} events "
                        f"({allowed})"
                    )
                else:
                    msg = f"{metric.event} events have no numeric field"
                yield (*loc, "field"), msg
        case DistinctMetric():
            fields = distinct_fields(metric.event)
            if metric.field not in fields:
                yield (
                    (*loc, "field"),
                    f"{metric.field!r} cannot be counted distinct for {metric.event} events "
                    f"({', '.join(fields)})",
                )
            elif metric.field == "user_id":
                for name in metric.where:
                    if name != "metric" and name in LAYOUTS["usage"].dims:
                        yield (
                            (*loc, "where", name),
                            "distinct user_id can only be filtered by metric",
                        )
        case OpenTicketsMetric():
            for i, priority in enumerate(metric.priority):
                if priority not in TICKET_PRIORITIES:
                    yield (
                        (*loc, "priority", i),
                        f"{priority!r} is not a ticket priority ({', '.join(TICKET_PRIORITIES)})",
                    )
        case RatioMetric():
            for part in ("numerator", "denominator"):
                inner: Metric = getattr(metric, part)
                if inner.kind in ("ratio", "change"):
                    yield (*loc, part, "kind"), f"a ratio cannot contain a {inner.kind}"
                else:
                    yield from _metric_errors(inner, (*loc, part), max_window=max_window)
        case ChangeMetric():
            if metric.of.kind not in WINDOWED_KINDS and metric.of.kind != "ratio":
                allowed = ", ".join(sorted(WINDOWED_KINDS))
                yield (
                    (*loc, "of", "kind"),
                    f"change needs a windowed metric ({allowed}, or a ratio of them)",
                )
            else:
                yield from _metric_errors(
                    metric.of, (*loc, "of"), max_window=MAX_CHANGE_WINDOW_DAYS
                )
    if isinstance(
        metric,
        CountMetric | SumMetric | AvgMetric | DistinctMetric | LatestMetric | DaysSinceMetric,
    ):
        yield from _where_errors(metric.event, metric.where, loc)
    elif isinstance(metric, SentimentMetric):
        if metric.event is None:
            if metric.where:
                yield (*loc, "where"), "a filter needs an event type (ticket, email or feedback)"
        else:
            yield from _where_errors(metric.event, metric.where, loc)


def _where_errors(
    event: str, where: Mapping[str, tuple[str, ...]], loc: Loc
) -> Iterator[tuple[Loc, str]]:
    layout = LAYOUTS[event]  # type: ignore[index]
    for field, values in where.items():
        floc: Loc = (*loc, "where", field)
        if field not in layout.dims:
            yield floc, f"{event} events cannot be filtered by {field!r} ({', '.join(layout.dims)})"
            continue
        if not values:
            yield floc, "must list at least one value"
        allowed = layout.enum_values.get(field)
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value:
                yield (*floc, i), "must be a non-empty string"
            elif allowed is not None and value not in allowed:
                yield (*floc, i), f"{value!r} is not a {event} {field} ({', '.join(allowed)})"
