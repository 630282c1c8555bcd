"""The health-model document: categories of weighted indicators and the RAG bands.

Build one with :func:`healthscore.engine.parse_model`, which adds the cross-field checks
(thresholds against direction, duplicate names, total weight, band coverage, metric fields) to the
structural ones declared here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from healthscore.engine.metrics import Metric

Status = Literal["red", "amber", "green"]
Direction = Literal["higher_is_better", "lower_is_better"]
MissingPolicy = Literal["exclude", "poor", "average"]

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppliesTo(_Doc):
    """Which accounts a model serves; an empty list places no condition on that attribute."""

    lifecycle_stages: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    segments: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()


class Band(_Doc):
    """A status for scores in ``[min, max)``; the top band also includes ``max`` (100)."""

    status: Status
    min: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    max: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


DEFAULT_BANDS: tuple[Band, ...] = (
    Band(status="red", min=0, max=40),
    Band(status="amber", min=40, max=70),
    Band(status="green", min=70, max=100),
)


class Shares(_Doc):
    """The share of ``max_points`` each level earns."""

    good: Share = 1.0
    average: Share = 0.5
    poor: Share = 0.0


class Indicator(_Doc):
    name: Name
    description: Annotated[str, Field(max_length=2_000)] | None = None
    metric: Metric
    max_points: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)]
    direction: Direction = "higher_is_better"
    good: Finite
    average: Finite
    shares: Shares = Field(default_factory=Shares)
    missing: MissingPolicy = "exclude"

    def level_of(self, value: float) -> Literal["good", "average", "poor"]:
        if self.direction == "higher_is_better":
            if value >= self.good:
                return "good"
            return "average" if value >= self.average else "poor"
        if value <= self.good:
            return "good"
        return "average" if value <= self.average else "poor"


class Category(_Doc):
    name: Name
    description: Annotated[str, Field(max_length=2_000)] | None = None
    weight: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
    indicators: Annotated[tuple[Indicator, ...], Field(min_length=1, max_length=100)]


class HealthModel(_Doc):
    """A validated health-model document (see docs/health-models.md)."""

    id: Slug
    name: Name
    description: Annotated[str, Field(max_length=4_000)] | None = None
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    priority: Annotated[int, Field(ge=-1_000_000, le=1_000_000)] = 0
    default: bool = False
    bands: Annotated[tuple[Band, ...], Field(min_length=1, max_length=3)] = DEFAULT_BANDS
    categories: Annotated[tuple[Category, ...], Field(min_length=1, max_length=50)]

    def document(self) -> dict[str, Any]:
        """The JSON-ready document; ``parse_model(model.document())`` gives an equal model."""
        return self.model_dump(mode="json", exclude_none=True)
