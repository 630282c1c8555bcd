"""Kafka topic names and the configuration each topic is created with (SPEC.md, "Kafka topics").

Topics are always created explicitly (``healthscore.kafka_admin.ensure_topics``); the broker's
auto-creation is never relied on, because it would pick the wrong partition count and cleanup
policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.events import EVENT_TYPES, EventType


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    """Every topic name, with the configurable prefix applied."""

    prefix: str = ""

    def event(self, event_type: EventType) -> str:
        return f"{self.prefix}events.{event_type}"

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(self.event(t) for t in EVENT_TYPES)

    @property
    def dlq(self) -> str:
        return f"{self.prefix}events.dlq"

    @property
    def scores(self) -> str:
        return f"{self.prefix}health.scores"

    @property
    def status(self) -> str:
        return f"{self.prefix}health.status"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}health.alerts"

    @property
    def models(self) -> str:
        return f"{self.prefix}health.models"

    @property
    def ticks(self) -> str:
        """Internal: rescore requests the scorer sends to itself (decay timer, model changes)."""
        return f"{self.prefix}scorer.ticks"

    def specs(self, partitions: int) -> tuple[TopicSpec, ...]:
        """The product topics. Event topics share one partition count (co-partitioning)."""
        compacted = {"cleanup.policy": "compact"}
        return (
            *(TopicSpec(name, partitions) for name in self.events),
            TopicSpec(self.dlq, partitions),
            # Co-partitioned with the event topics: a tick lands where its account's state lives.
            TopicSpec(self.ticks, partitions, {"retention.ms": str(24 * 3600 * 1000)}),
            TopicSpec(self.scores, partitions),
            TopicSpec(self.status, partitions, compacted),
            TopicSpec(self.alerts, partitions),
            # One partition keeps every scorer's view of model versions in one total order.
            TopicSpec(self.models, 1, compacted),
        )
