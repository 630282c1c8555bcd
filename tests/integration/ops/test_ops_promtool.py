"""promtool over what we ship: the alerting rules load (`check rules`) and behave (`test rules`:
each alert fires on the series that should page and stays quiet otherwise), and every service's
metrics pass `promtool check metrics` (naming conventions: base units, `_total` counters, help
text). The running services' own /metrics scrapes go through the same check in
test_ops_prometheus_scrape.py."""

from __future__ import annotations

import subprocess

import pytest
from ops_support import RULES, RULES_TEST, tool
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from services.alerts.metrics import AlertsMetrics
from services.api.metrics import ApiMetrics
from services.ingest.metrics import IngestMetrics
from services.scorer.metrics import ScorerMetrics

# The first run on a fresh machine installs the tools (helm builds from source: minutes).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

METRICS = {
    "ingest": IngestMetrics,
    "scorer": ScorerMetrics,
    "alerts": AlertsMetrics,
    "api": ApiMetrics,
}


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [tool("promtool"), *args], input=stdin, capture_output=True, timeout=120, check=False
    )


def test_rules_file_loads() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"SUCCESS" in done.stdout


def test_rules_fire_when_they_should_and_only_then() -> None:
    done = promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def exercised(cls: type) -> bytes:
    """The service's exposition with one child per labelled metric and a value in each."""
    registry = CollectorRegistry()
    instance = cls(registry)
    for metric in vars(instance).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labels = ["x"] * len(metric._labelnames)
        if isinstance(metric, Counter):
            (metric.labels(*labels) if labels else metric).inc()
        elif isinstance(metric, Gauge):
            (metric.labels(*labels) if labels else metric).set(1)
        elif isinstance(metric, Histogram):
            (metric.labels(*labels) if labels else metric).observe(0.2)
    return generate_latest(registry)


@pytest.mark.parametrize("service", sorted(METRICS))
def test_service_metrics_pass_promtool_check_metrics(service: str) -> None:
    exposition = exercised(METRICS[service])
    assert f"healthscore_{service}_".encode() in exposition
    done = promtool("check", "metrics", stdin=exposition)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert not done.stdout.strip(), done.stdout.decode()
    assert not done.stderr.strip(), done.stderr.decode()
