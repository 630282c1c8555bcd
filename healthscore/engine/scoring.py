"""Scoring: indicator levels and points, category scores, the weighted overall score, the band.

- indicator points = level share x ``max_points`` (no data: per ``missing``; ``exclude`` drops the
  indicator and the rest of its category renormalises);
- category score = earned / possible points of its counted indicators x 100 (None if none count);
- overall score = weighted mean of the categories with a score, rounded half up to one decimal;
- status = the band containing the rounded score.

With no category scored at all the account is *unknown*, not healthy or failing: it gets the
neutral score 50 (or the middle of the amber band when custom bands put 50 elsewhere) and the
status of that band, and ``ScoreCard.has_data`` is False.
"""

from __future__ import annotations

import datetime as dt
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from healthscore.engine.evaluation import Context, Evaluator, compile_metric
from healthscore.engine.model import HealthModel, Indicator, Status
from healthscore.engine.state import AccountState

Level = Literal["good", "average", "poor", "missing"]

NEUTRAL_SCORE = 50.0


@dataclass(frozen=True, slots=True)
class PublishedModel:
    """A model version the scorer can use; the repository's built-in models have version 0."""

    model_id: str
    version: int
    model: HealthModel


@dataclass(frozen=True, slots=True)
class CategoryResult:
    name: str
    weight: float
    score: float | None
    earned_points: float
    possible_points: float


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    category: str
    name: str
    metric: str
    value: float | None
    level: Level
    points: float
    max_points: float
    counted: bool


@dataclass(frozen=True, slots=True)
class ScoreCard:
    account_id: str
    model_id: str
    model_version: int
    score: float
    status: Status
    categories: tuple[CategoryResult, ...]
    indicators: tuple[IndicatorResult, ...]
    as_of: dt.datetime
    has_data: bool = True  # False: no category had data; score is the neutral score


@dataclass(frozen=True, slots=True)
class _PlannedIndicator:
    category: int
    category_name: str
    spec: Indicator
    metric_text: str
    evaluate: Evaluator
    # Rounded value -> (result, points earned, points possible): results are immutable and the
    # same few values recur across accounts, so each is built once (bounded; see _scored).
    memo: dict[float | None, tuple[IndicatorResult, float, float]]


@dataclass(frozen=True, slots=True)
class Plan:
    """A model compiled for scoring (holds no reference to the model, so the cache can let go)."""

    indicators: tuple[_PlannedIndicator, ...]
    bands: tuple[tuple[float, float, Status], ...]  # sorted by min
    neutral: float
    # Per category: (earned, possible) -> (result, unrounded score); as for indicator results.
    category_memo: tuple[dict[tuple[float, float], tuple[CategoryResult, float | None]], ...] = ()


# Compiled plans by model object. Keyed by id() with a weak reference (a model's hash would
# walk the whole document on every call); an entry goes when its model is garbage collected.
_PLANS: dict[int, tuple[weakref.ref[HealthModel], Plan]] = {}


def plan_for(model: HealthModel) -> Plan:
    """The model compiled for scoring, built once per model object."""
    key = id(model)
    found = _PLANS.get(key)
    if found is not None and found[0]() is model:
        return found[1]
    indicators = tuple(
        _PlannedIndicator(ci, cat.name, ind, ind.metric.describe(), compile_metric(ind.metric), {})
        for ci, cat in enumerate(model.categories)
        for ind in cat.indicators
    )
    bands = tuple(sorted((b.min, b.max, b.status) for b in model.bands))
    neutral = NEUTRAL_SCORE
    amber = [b for b in bands if b[2] == "amber"]
    if amber and not amber[0][0] <= NEUTRAL_SCORE < amber[0][1]:
        neutral = round_score((amber[0][0] + amber[0][1]) / 2)
    plan = Plan(indicators, bands, neutral, tuple({} for _ in model.categories))

    def forget(_ref: weakref.ref[HealthModel]) -> None:
        _PLANS.pop(key, None)

    _PLANS[key] = (weakref.ref(model, forget), plan)
    return plan


_MEMO_LIMIT = 4096


def _scored(
    planned: _PlannedIndicator, value: float | None
) -> tuple[IndicatorResult, float, float]:
    """An indicator's result at ``value`` (rounded) and the points it adds to its category's
    earned and possible totals (0 when it does not count)."""
    spec = planned.spec
    level: Level
    if value is None:
        level = "missing"
        counted = spec.missing != "exclude"
        share = 0.0
        if spec.missing == "average":
            share = spec.shares.average
        elif spec.missing == "poor":
            share = spec.shares.poor
    else:
        level = spec.level_of(value)
        counted = True
        share = getattr(spec.shares, level)
    points = share * spec.max_points if counted else 0.0
    result = IndicatorResult(
        category=planned.category_name,
        name=spec.name,
        metric=planned.metric_text,
        value=value,
        level=level,
        points=round(points, 4),
        max_points=spec.max_points,
        counted=counted,
    )
    return result, points, (spec.max_points if counted else 0.0)


def round_score(value: float) -> float:
    """Half up to one decimal, after removing float noise far below the displayed precision."""
    return math.floor(round(value, 9) * 10 + 0.5) / 10


def band_of(plan: Plan, score: float) -> Status:
    for low, high, status in plan.bands:
        if low <= score < high:
            return status
    return plan.bands[-1][2] if score >= plan.bands[-1][1] else plan.bands[0][2]


def evaluate_values(
    state: AccountState, model: HealthModel, as_of: dt.datetime
) -> list[float | None]:
    """Each indicator's metric value, in model order (None: no data)."""
    plan = plan_for(model)
    ctx = Context(state, as_of)
    return [p.evaluate(ctx, ctx.day) for p in plan.indicators]


def score(state: AccountState, model: PublishedModel, as_of: dt.datetime) -> ScoreCard:
    """Score an account with a model at ``as_of`` (aware); never reads a clock."""
    values = evaluate_values(state, model.model, as_of)
    return score_values(model, values, account_id=state.account_id, as_of=as_of)


def score_values(
    model: PublishedModel,
    values: Sequence[float | None],
    *,
    account_id: str,
    as_of: dt.datetime,
) -> ScoreCard:
    """The score card for given indicator values (model order); the arithmetic of :func:`score`."""
    plan = plan_for(model.model)
    categories = model.model.categories
    earned = [0.0] * len(categories)
    possible = [0.0] * len(categories)
    results: list[IndicatorResult] = []
    for planned, raw in zip(plan.indicators, values, strict=True):
        value = None if raw is None else round(raw, 4)
        # Only None and floats other than -0.0 and NaN are memo keys: 5 == 5.0 and
        # -0.0 == 0.0 as keys, but their results differ in type or sign.
        memoised = value is None or (type(value) is float and value == value and value != 0.0)
        found = planned.memo.get(value) if memoised else None
        if found is None:
            found = _scored(planned, value)
            if memoised:
                if len(planned.memo) >= _MEMO_LIMIT:
                    planned.memo.clear()
                planned.memo[value] = found
        result, points, max_points = found
        earned[planned.category] += points
        possible[planned.category] += max_points
        results.append(result)
    category_results: list[CategoryResult] = []
    weighted = total_weight = 0.0
    for ci, cat in enumerate(categories):
        # Sums of non-negative floats starting at 0.0: never -0.0, NaN or an int, so any pair
        # is a safe memo key.
        totals = (earned[ci], possible[ci])
        memo = plan.category_memo[ci]
        cat_found = memo.get(totals)
        if cat_found is None:
            cat_score = earned[ci] / possible[ci] * 100 if possible[ci] > 0 else None
            category = CategoryResult(
                name=cat.name,
                weight=cat.weight,
                score=None if cat_score is None else round_score(cat_score),
                earned_points=round(earned[ci], 4),
                possible_points=round(possible[ci], 4),
            )
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            cat_found = memo[totals] = (category, cat_score)
        category, cat_score = cat_found
        if cat_score is not None:
            weighted += cat.weight * cat_score
            total_weight += cat.weight
        category_results.append(category)
    has_data = total_weight > 0
    overall = round_score(weighted / total_weight) if has_data else plan.neutral
    overall = min(max(overall, 0.0), 100.0)
    return ScoreCard(
        account_id=account_id,
        model_id=model.model_id,
        model_version=model.version,
        score=overall,
        status=band_of(plan, overall),
        categories=tuple(category_results),
        indicators=tuple(results),
        as_of=as_of,
        has_data=has_data,
    )
