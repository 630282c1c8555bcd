"""Prometheus metrics of the ingest service, registered on an injected registry."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

RejectReason = Literal["validation", "malformed", "too_many_items", "rate_limited", "unavailable"]

ROUTES = ("/v1/events", "/healthz", "/readyz", "/metrics")


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "healthscore_ingest_requests_total",
            "HTTP requests by route and status code (unknown paths as route='other').",
            ["route", "code"],
            registry=registry,
        )
        self.accepted = Counter(
            "healthscore_ingest_events_accepted_total",
            "Events acknowledged by Kafka, by event type.",
            ["type"],
            registry=registry,
        )
        self.rejected = Counter(
            "healthscore_ingest_events_rejected_total",
            "Events refused, by reason (validation, malformed, too_many_items, rate_limited, "
            "unavailable). Refusals before the body is read (401, 403, 413) count in requests.",
            ["reason"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "healthscore_ingest_publish_latency_seconds",
            "Time from handing a request's events to the producer to Kafka's last "
            "acknowledgement (acks=all).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        # Pre-create the label sets dashboards expect, so absent series read as zero.
        for reason in ("validation", "malformed", "too_many_items", "rate_limited", "unavailable"):
            self.rejected.labels(reason)

    def request(self, path: str, code: int) -> None:
        self.requests.labels(path if path in ROUTES else "other", str(code)).inc()

    def reject(self, reason: RejectReason, count: int = 1) -> None:
        if count:
            self.rejected.labels(reason).inc(count)
