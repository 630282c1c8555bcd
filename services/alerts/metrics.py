"""Prometheus metrics of the alerts service (registry injected; names per docs/architecture.md).

``destination`` labels take configured destination names only (bounded by the config file);
never account ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("delivered", "retry", "dead_lettered")


class AlertsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fired = Counter(
            "healthscore_alerts_fired_total",
            "Alerts raised by the rules, by rule type.",
            ["rule"],
            registry=registry,
        )
        self.suppressed = Counter(
            "healthscore_alerts_suppressed_total",
            "Alerts held back by their rule's cooldown, by rule type.",
            ["rule"],
            registry=registry,
        )
        self.deliveries = Counter(
            "healthscore_alerts_deliveries_total",
            "Delivery outcomes (delivered, retry, dead_lettered), per destination.",
            ["destination", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "healthscore_alerts_delivery_attempts_total",
            "Delivery attempts (HTTP requests or Kafka sends), per destination.",
            ["destination"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "healthscore_alerts_dead_letters_total",
            "Deliveries given up and dead-lettered, per destination.",
            ["destination"],
            registry=registry,
        )
        self.latency = Histogram(
            "healthscore_alerts_delivery_latency_seconds",
            "Time of one delivery attempt, per destination.",
            ["destination"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.healthy = Gauge(
            "healthscore_alerts_destination_healthy",
            "1 while a destination answers, 0 after repeated failures.",
            ["destination"],
            registry=registry,
        )
        self.records = Counter(
            "healthscore_alerts_score_records_total",
            "health.scores records evaluated.",
            registry=registry,
        )
        self.pending = Gauge(
            "healthscore_alerts_pending_deliveries",
            "Deliveries waiting (outbox rows), per destination, as last seen by its worker.",
            ["destination"],
            registry=registry,
        )

    def register_destination(self, name: str) -> None:
        """Create the destination's series at zero, so dashboards see them before any traffic."""
        self.healthy.labels(name).set(1)
        self.attempts.labels(name)
        self.dead_letters.labels(name)
        self.pending.labels(name).set(0)
        for outcome in OUTCOMES:
            self.deliveries.labels(name, outcome)
