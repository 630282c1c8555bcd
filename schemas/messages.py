"""Messages Healthscore publishes to Kafka (SPEC.md, "Kafka topics").

- ``health.scores``: one :class:`ScoreChanged` per score or status change.
- ``health.status``: compacted, keyed by account; the latest :class:`ScoreChanged` per account.
- ``health.alerts``: one :class:`AlertRaised` per alert.
- ``health.models``: compacted, keyed by model id; one :class:`ModelPublished` per version.
- ``events.dlq``: the original record bytes, with :data:`DLQ_HEADERS` saying why.

Consumers must ignore fields they do not know (these models forbid nothing on read); producers
bump ``schema_version`` on any change that is not purely additive.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

Status = Literal["red", "amber", "green"]
Level = Literal["good", "average", "poor", "missing"]
ScoreCause = Literal["event", "time", "model"]
AlertRule = Literal[
    "status_drop",
    "red_alert",
    "sustained_decline",
    "renewal_at_risk",
    "onboarding_stalled",
    "expansion_opportunity",
]

# Header names on events.dlq records (values are UTF-8).
DLQ_HEADERS = {
    "reason": "healthscore-dlq-reason",  # short machine code: decode_error, validation_error, ...
    "detail": "healthscore-dlq-detail",  # human text: field paths and messages, never payload text
    "topic": "healthscore-dlq-topic",
    "partition": "healthscore-dlq-partition",
    "offset": "healthscore-dlq-offset",
    "failed_at": "healthscore-dlq-failed-at",
}


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AccountProfile(_Message):
    name: str | None = None
    lifecycle_stage: str | None = None
    segment: str | None = None
    owner: str | None = None
    licenses: int | None = None
    arr_cents: int | None = None
    renewal_date: str | None = Field(default=None, description="ISO date")
    parent_account_id: str | None = None


class IndicatorScore(_Message):
    category: str
    name: str
    metric: str
    value: float | None
    level: Level
    points: float
    max_points: float
    counted: bool = Field(description="False when the indicator has no data and is excluded")


class CategoryScore(_Message):
    name: str
    weight: float
    score: float | None = Field(description="0-100, None when no indicator has data")
    earned_points: float
    possible_points: float


class Driver(_Message):
    """An indicator whose points moved; ``delta`` is new minus old points, weighted to the score."""

    category: str
    indicator: str
    old_value: float | None
    new_value: float | None
    old_level: Level | None
    new_level: Level
    points_delta: float
    score_impact: float = Field(description="contribution of this move to the overall score change")


class ScoreChanged(_Message):
    schema_version: Literal[1] = SCHEMA_VERSION
    account_id: str
    profile: AccountProfile
    model_id: str
    model_version: int
    old_score: float | None
    new_score: float
    old_status: Status | None
    new_status: Status
    categories: list[CategoryScore]
    indicators: list[IndicatorScore]
    drivers: list[Driver]
    cause: ScoreCause
    scored_at: AwareDatetime
    event_time: AwareDatetime | None = Field(
        description="occurred_at of the event that caused the change; None for time or model"
    )


class AlertRaised(_Message):
    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str = Field(description="stable idempotency id, reused by every delivery attempt")
    rule: AlertRule
    rule_name: str
    account_id: str
    profile: AccountProfile
    old_score: float | None
    new_score: float
    old_status: Status | None
    new_status: Status
    drivers: list[Driver]
    model_id: str
    model_version: int
    raised_at: AwareDatetime
    details: dict[str, Any] = Field(default_factory=dict)


class ModelPublished(_Message):
    schema_version: Literal[1] = SCHEMA_VERSION
    model_id: str
    version: int
    document: dict[str, Any] = Field(description="the validated health model document")
    published_at: AwareDatetime
    published_by: str | None = None
