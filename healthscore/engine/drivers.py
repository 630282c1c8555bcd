"""Drivers: which indicators moved a score, and by how much of the overall score.

An indicator's *contribution* to a score card is its share of the overall score::

    weight(category) / sum(weights of categories with data) x points / possible(category) x 100

so the contributions of all counted indicators add up to the (unrounded) overall score. A
driver's ``score_impact`` is its new contribution minus its old one: weights and renormalisation
are accounted for, and the impacts of all indicators add up to the score change (except when a
card without data, which carries the neutral score, is involved).
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


def contributions(card: ScoreCard) -> dict[tuple[str, str], float]:
    """Each indicator's share of the card's overall score (0 for uncounted indicators)."""
    total_weight = sum(c.weight for c in card.categories if c.score is not None)
    by_name = {c.name: c for c in card.categories}
    out: dict[tuple[str, str], float] = {}
    for ind in card.indicators:
        category = by_name[ind.category]
        share = 0.0
        if ind.counted and total_weight > 0 and category.possible_points > 0:
            share = category.weight / total_weight * ind.points / category.possible_points * 100
        out[(ind.category, ind.name)] = share
    return out


def drivers(
    previous: ScoreCard | None, current: ScoreCard, limit: int = 3
) -> tuple[DriverResult, ...]:
    """The ``limit`` indicators whose move changed the score most (largest ``|score_impact|``).

    Only indicators whose points, level or counting changed are candidates; with no previous
    card every indicator is new and its impact is its whole contribution.
    """
    new_share = contributions(current)
    old_share = contributions(previous) if previous is not None else {}
    old_by_key: dict[tuple[str, str], IndicatorResult] = (
        {(i.category, i.name): i for i in previous.indicators} if previous is not None else {}
    )
    candidates: list[DriverResult] = []
    for ind in current.indicators:
        key = (ind.category, ind.name)
        old = old_by_key.get(key)
        old_points = old.points if old is not None else 0.0
        if old is not None and (old.points, old.level, old.counted, old.value) == (
            ind.points,
            ind.level,
            ind.counted,
            ind.value,
        ):
            continue
        impact = new_share[key] - old_share.get(key, 0.0)
        candidates.append(
            DriverResult(
                category=ind.category,
                indicator=ind.name,
                old_value=old.value if old is not None else None,
                new_value=ind.value,
                old_level=old.level if old is not None else None,
                new_level=ind.level,
                points_delta=round(ind.points - old_points, 4),
                score_impact=round(impact, 4),
            )
        )
    candidates.sort(
        key=lambda d: (-abs(d.score_impact), -abs(d.points_delta), d.category, d.indicator)
    )
    return tuple(candidates[: max(limit, 0)])
