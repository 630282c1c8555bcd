"""Prometheus metrics of the api, registered on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # ``route`` is the route template (``/v1/accounts/{account_id}``), never a raw path, so
        # account ids and model ids do not become label values.
        self.requests = Counter(
            "healthscore_api_requests_total",
            "HTTP requests answered, by route template and status code",
            ["route", "code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "healthscore_api_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.models_published = Counter(
            "healthscore_api_models_published_total",
            "Model versions published and acknowledged by Kafka (rollbacks and default transfers"
            " included)",
            registry=registry,
        )
