"""Every metric the dashboard and the alerting rules query is one a service registers, with the
labels the queries group and filter by; the committed dashboard is what its generator builds; and
the chart's copies of the rules and the dashboard are identical to the originals.

The services' metrics classes are instantiated with a fresh CollectorRegistry each, so this sees
exactly what a service's /metrics would expose (before any traffic: names, types and labels).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from services.alerts.metrics import AlertsMetrics
from services.api.metrics import ApiMetrics
from services.ingest.metrics import IngestMetrics
from services.scorer.metrics import ScorerMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "healthscore.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "healthscore.json"
DASHBOARD_BUILDER = ROOT / "deploy" / "grafana" / "build_dashboard.py"
CHART_FILES = ROOT / "deploy" / "helm" / "healthscore" / "files"

METRICS_CLASSES = {
    "ingest": IngestMetrics,
    "scorer": ScorerMetrics,
    "alerts": AlertsMetrics,
    "api": ApiMetrics,
}
# Labels Prometheus adds to every scraped series, and the histogram bucket label.
TARGET_LABELS = {"job", "instance", "le"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
METRIC = re.compile(r"\bhealthscore_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def registered() -> dict[str, set[str]]:
    """Sample name -> label names, over every service's metrics on fresh registries."""
    samples: dict[str, set[str]] = {}
    for cls in METRICS_CLASSES.values():
        instance = cls(CollectorRegistry())
        for metric in vars(instance).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            (family,) = metric.describe()
            labels = set(metric._labelnames)  # the declared label names (no public accessor)
            for suffix in SUFFIXES[family.type]:
                samples[family.name + suffix] = labels
    return samples


def rule_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(json.loads(DASHBOARD.read_text())["panels"])


EXPRESSIONS = [("rules", *e) for e in rule_expressions()] + [
    ("dashboard", *e) for e in dashboard_expressions()
]


def selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(metric, label names in its {...} matcher) for every healthscore metric in a query."""
    for match in METRIC.finditer(expr):
        rest = expr[match.end() :]
        labels: set[str] = set()
        if rest.startswith("{"):
            body = rest[1 : rest.index("}")]
            labels = {m.group(1) for m in re.finditer(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body)}
        yield match.group(0), labels


def test_the_services_register_what_the_checks_expect() -> None:
    names = registered()
    # A few anchors, so a renamed metric fails here with a clear message, not only in PromQL.
    assert "healthscore_ingest_requests_total" in names
    assert "healthscore_scorer_consumer_lag" in names
    assert "healthscore_alerts_deliveries_total" in names
    assert names["healthscore_alerts_deliveries_total"] == {"destination", "outcome"}
    for name in names:
        assert name.startswith(
            (
                "healthscore_ingest_",
                "healthscore_scorer_",
                "healthscore_alerts_",
                "healthscore_api_",
            )
        ), name


@pytest.mark.parametrize(
    ("source", "where", "expr"), EXPRESSIONS, ids=[f"{s}:{w}" for s, w, _ in EXPRESSIONS]
)
def test_every_queried_metric_and_label_is_registered(source: str, where: str, expr: str) -> None:
    names = registered()
    used = list(selectors(expr))
    recorded = re.findall(r"\bhealthscore:[a-z0-9_:]+", expr)
    assert used or recorded or "up{" in expr, f"{source} {where}: no healthscore metric in {expr}"
    metric_labels: set[str] = set()
    for metric, labels in used:
        assert metric in names, f"{source} {where}: {metric} is not registered by any service"
        unknown = labels - names[metric] - TARGET_LABELS
        assert not unknown, f"{source} {where}: {metric} has no label {sorted(unknown)}"
        metric_labels |= names[metric]
    if used:
        for group in GROUPING.findall(expr):
            grouped = {label.strip() for label in group.split(",") if label.strip()}
            unknown = grouped - metric_labels - TARGET_LABELS
            assert not unknown, f"{source} {where}: groups by unknown label {sorted(unknown)}"


def test_recording_rules_used_are_defined() -> None:
    records = {
        rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for _, where, expr in EXPRESSIONS:
        for name in re.findall(r"\bhealthscore:[a-z0-9_:]+", expr):
            assert name in records, f"{where}: recording rule {name} is not defined"


def test_no_metric_is_labelled_by_account() -> None:
    for name, labels in registered().items():
        assert not {label for label in labels if "account" in label}, (
            f"{name}: account ids never become series"
        )


def test_dashboard_is_what_its_generator_builds() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboard", DASHBOARD_BUILDER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text() == module.render(), (
        "run: .venv/bin/python deploy/grafana/build_dashboard.py"
    )
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert titles == {"Overview", "Ingest", "Scorer", "Alerts", "API"}


def test_chart_copies_are_identical() -> None:
    assert (CHART_FILES / "healthscore.rules.yml").read_bytes() == RULES.read_bytes()
    assert (CHART_FILES / "healthscore-dashboard.json").read_bytes() == DASHBOARD.read_bytes()
