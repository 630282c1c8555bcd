"""Drivers: which indicators moved a score, and by how much of the overall score.

A driver's ``score_impact`` is the change of the overall score had only that indicator moved:
the previous card's categories with this one indicator's new points (and counted / not counted)
put in, renormalised exactly as scoring does. Weights, renormalisation within the category (an
indicator that starts or stops counting) and between categories (a category that gains or loses
its data) are all accounted for. Impacts of simultaneous moves in one category need not add up
exactly to the score change; each one answers "what did this move alone do".
"""

from __future__ import annotations

from dataclasses import dataclass

from healthscore.engine.scoring import IndicatorResult, Level, ScoreCard


@dataclass(frozen=True, slots=True)
class DriverResult:
    category: str
    indicator: str
    old_value: float | None
    new_value: float | None
    old_level: Level | None
    new_level: Level
    points_delta: float
    score_impact: float


class _Base:
    """The previous card's category totals, able to re-score with one indicator swapped."""

    def __init__(self, card: ScoreCard | None, current: ScoreCard) -> None:
        self.weight: dict[str, float] = {c.name: c.weight for c in current.categories}
        self.earned: dict[str, float] = {}
        self.possible: dict[str, float] = {}
        self.fallback = card.score if card is not None else 0.0
        if card is not None:
            for c in card.categories:
                self.weight[c.name] = c.weight
                self.earned[c.name] = c.earned_points
                self.possible[c.name] = c.possible_points
        self.score = self.overall(None, 0.0, 0.0)

    def overall(self, category: str | None, earned_delta: float, possible_delta: float) -> float:
        weighted = total = 0.0
        for name, weight in self.weight.items():
            earned = self.earned.get(name, 0.0)
            possible = self.possible.get(name, 0.0)
            if name == category:
                earned += earned_delta
                possible += possible_delta
            if possible > 1e-9:
                weighted += weight * earned / possible * 100
                total += weight
        return weighted / total if total > 0 else self.fallback


def _counted_points(ind: IndicatorResult | None) -> tuple[float, float]:
    if ind is None or not ind.counted:
        return 0.0, 0.0
    return ind.points, ind.max_points


def drivers(
    previous: ScoreCard | None, current: ScoreCard, limit: int = 3
) -> tuple[DriverResult, ...]:
    """The ``limit`` indicators whose move changed the score most (largest ``|score_impact|``).

    Candidates are the indicators whose value, level, points or counting changed; without a
    previous card every indicator is new (its old side counts as absent).
    """
    old_by_key: dict[tuple[str, str], IndicatorResult] = (
        {(i.category, i.name): i for i in previous.indicators} if previous is not None else {}
    )
    base = _Base(previous, current)
    candidates: list[DriverResult] = []
    for ind in current.indicators:
        old = old_by_key.get((ind.category, ind.name))
        if old is not None and (old.points, old.level, old.counted, old.value) == (
            ind.points,
            ind.level,
            ind.counted,
            ind.value,
        ):
            continue
        old_points, old_possible = _counted_points(old)
        new_points, new_possible = _counted_points(ind)
        moved = base.overall(ind.category, new_points - old_points, new_possible - old_possible)
        candidates.append(
            DriverResult(
                category=ind.category,
                indicator=ind.name,
                old_value=old.value if old is not None else None,
                new_value=ind.value,
                old_level=old.level if old is not None else None,
                new_level=ind.level,
                points_delta=round(ind.points - (old.points if old is not None else 0.0), 4),
                score_impact=round(moved - base.score, 4),
            )
        )
    candidates.sort(
        key=lambda d: (
            -abs(d.score_impact),
            d.score_impact,
            -abs(d.points_delta),
            d.category,
            d.indicator,
        )
    )
    return tuple(candidates[: max(limit, 0)])
