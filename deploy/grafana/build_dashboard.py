"""Builds deploy/grafana/dashboards/healthscore.json, the provisioning-ready Grafana dashboard.

Run ``python deploy/grafana/build_dashboard.py`` after changing a panel; a test fails when the
committed JSON and this script disagree, and another when a query names a metric no service
registers. Panels are generated rather than hand-edited so every service gets the same RED layout
(rate, errors, duration) and the queries stay greppable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "dashboards" / "healthscore.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24

Panel = dict[str, Any]


class Layout:
    """Places panels left to right, wrapping rows, and numbers them."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": len(self.panels) + 1,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self.y, "w": WIDTH, "h": 1},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self.x + w > WIDTH:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def timeseries(
    title: str,
    queries: list[tuple[str, str]],
    unit: str,
    description: str,
    *,
    stack: bool = False,
) -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(queries)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 20 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "showPoints": "never",
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, expr: str, unit: str, description: str, legend: str = "") -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, legend, "A")],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    """p50 and p99 of a histogram, optionally split by a label."""
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))",
            f"p{int(q * 100)}{suffix}",
        )
        for q in (0.5, 0.99)
    ]


def red_row(layout: Layout, svc: str, requests: str, duration: tuple[str, str]) -> None:
    """Rate, errors and duration of an HTTP service."""
    layout.add(
        timeseries(
            "Requests by status code",
            [(f"sum by (code) (rate({requests}[$__rate_interval]))", "{{code}}")],
            "reqps",
            f"{svc}: HTTP requests answered per second, by status code.",
            stack=True,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Error ratio",
            [
                (
                    f'sum(rate({requests}{{code=~"5.."}}[$__rate_interval]))'
                    f" / sum(rate({requests}[$__rate_interval]))",
                    "5xx",
                ),
                (
                    f'sum(rate({requests}{{code=~"4.."}}[$__rate_interval]))'
                    f" / sum(rate({requests}[$__rate_interval]))",
                    "4xx",
                ),
            ],
            "percentunit",
            f"{svc}: share of requests answered with 5xx (our fault) and 4xx (the client's).",
        ),
        8,
        8,
    )
    metric, what = duration
    layout.add(
        timeseries(what, quantiles(metric), "s", f"{svc}: {what.lower()}, p50 and p99."),
        8,
        8,
    )


def build() -> dict[str, Any]:
    layout = Layout()

    layout.row("Overview")
    layout.add(
        stat(
            "Events ingested / s",
            "sum(rate(healthscore_ingest_events_accepted_total[$__rate_interval]))",
            "ops",
            "Events accepted by ingest and acknowledged by Kafka.",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Events scored / s",
            "sum(rate(healthscore_scorer_events_processed_total[$__rate_interval]))",
            "ops",
            "Records the scorer workers processed (events and decay ticks).",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Consumer lag",
            "sum(healthscore_scorer_consumer_lag)",
            "short",
            "Records waiting on the event topics, all partitions.",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Scoring latency p99",
            "histogram_quantile(0.99, sum by (le) "
            "(rate(healthscore_scorer_event_lag_seconds_bucket[$__rate_interval])))",
            "s",
            "Event time to new score, 99th percentile.",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Accounts by status",
            "sum by (status) (healthscore_scorer_accounts)",
            "short",
            "Accounts each status, summed over the scorer workers that own them.",
            legend="{{status}}",
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Alerts fired (1h)",
            "sum(increase(healthscore_alerts_fired_total[1h]))",
            "short",
            "Alerts raised by every rule in the last hour.",
        ),
        4,
        4,
    )

    layout.row("Ingest")
    red_row(
        layout,
        "ingest",
        "healthscore_ingest_requests_total",
        ("healthscore_ingest_publish_latency_seconds", "Kafka publish latency"),
    )
    layout.add(
        timeseries(
            "Events accepted by type",
            [
                (
                    "sum by (type) (rate(healthscore_ingest_events_accepted_total"
                    "[$__rate_interval]))",
                    "{{type}}",
                )
            ],
            "ops",
            "Events published to Kafka per second, by event type.",
            stack=True,
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Events rejected by reason",
            [
                (
                    "sum by (reason) (rate(healthscore_ingest_events_rejected_total"
                    "[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            "ops",
            "Events refused at ingest (validation, auth, size, rate limit, Kafka unavailable).",
            stack=True,
        ),
        12,
        8,
    )

    layout.row("Scorer")
    layout.add(
        timeseries(
            "Records processed by type",
            [
                (
                    "sum by (type) (rate(healthscore_scorer_events_processed_total"
                    "[$__rate_interval]))",
                    "{{type}}",
                )
            ],
            "ops",
            "Records scored per second, by event type (decay and model ticks included).",
            stack=True,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Consumer lag by partition",
            [
                (
                    "sum by (partition) (healthscore_scorer_consumer_lag)",
                    "partition {{partition}}",
                )
            ],
            "short",
            "Records behind the end of each partition, summed over the event and tick topics"
            " (partition n of every input topic belongs to one worker). Growing lag: add workers"
            " (up to the partition count) or find the slow dependency.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Scoring latency (event time → scored)",
            quantiles("healthscore_scorer_event_lag_seconds"),
            "s",
            "From the event's occurred_at to its new score. Includes the source's own delay.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Processing time (received → scored)",
            quantiles("healthscore_scorer_processing_seconds"),
            "s",
            "Time a worker spends on one record once it has it.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Score changes by transition",
            [
                (
                    "sum by (from_status, to_status) "
                    "(rate(healthscore_scorer_score_changes_total[$__rate_interval]))",
                    "{{from_status}} → {{to_status}}",
                )
            ],
            "ops",
            "health.scores records per second, by status transition.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Accounts by status",
            [("sum by (status) (healthscore_scorer_accounts)", "{{status}}")],
            "short",
            "Accounts currently red, amber and green.",
            stack=True,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Dead-lettered records by reason",
            [
                (
                    "sum by (reason) (rate(healthscore_scorer_dlq_records_total"
                    "[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            "ops",
            "Records sent to events.dlq per second. Any steady rate deserves a look.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Decay sweep duration",
            quantiles("healthscore_scorer_decay_sweep_seconds"),
            "s",
            "Time one decay timer pass takes to find due accounts and send their ticks.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Table recovery",
            [
                (
                    "sum by (instance) (increase(healthscore_scorer_table_recoveries_total"
                    "[$__rate_interval]))",
                    "recoveries {{instance}}",
                ),
                (
                    "max by (instance) (healthscore_scorer_owned_partitions)",
                    "partitions owned {{instance}}",
                ),
            ],
            "short",
            "Table recoveries completed (one per rebalance) and the partitions each worker owns"
            " afterwards. Frequent recoveries: workers restarting or the group flapping.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "PostgreSQL writer",
            [
                ("sum(healthscore_scorer_postgres_pending)", "pending records"),
                (
                    "sum(rate(healthscore_scorer_postgres_errors_total[$__rate_interval]))",
                    "failed batches / s",
                ),
            ],
            "short",
            "Scored records waiting for their batch write (their offsets wait too) and batches"
            " that failed and will be retried.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "PostgreSQL batch duration",
            quantiles("healthscore_scorer_postgres_flush_seconds"),
            "s",
            "Time of one batch transaction (account_scores upserts and score_history inserts).",
        ),
        8,
        8,
    )

    layout.row("Alerts")
    layout.add(
        timeseries(
            "Alerts fired by rule",
            [
                (
                    "sum by (rule) (rate(healthscore_alerts_fired_total[$__rate_interval]))",
                    "{{rule}}",
                )
            ],
            "ops",
            "Alerts raised per second, by rule.",
            stack=True,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Deliveries by destination and outcome",
            [
                (
                    "sum by (destination, outcome) "
                    "(rate(healthscore_alerts_deliveries_total[$__rate_interval]))",
                    "{{destination}} {{outcome}}",
                )
            ],
            "ops",
            "Attempt outcomes per second: delivered, retry (will be tried again) and"
            " dead_lettered (attempts or age ran out).",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Delivery failure ratio",
            [
                (
                    "sum by (destination) (rate(healthscore_alerts_deliveries_total"
                    '{outcome!="delivered"}[$__rate_interval])) / sum by (destination) '
                    "(rate(healthscore_alerts_deliveries_total[$__rate_interval]))",
                    "{{destination}}",
                )
            ],
            "percentunit",
            "Share of attempt outcomes that were retry or dead_lettered, per destination.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Delivery attempts / s",
            [
                (
                    "sum(rate(healthscore_alerts_delivery_attempts_total[$__rate_interval]))",
                    "attempts",
                ),
                (
                    "sum(rate(healthscore_alerts_dead_letters_total[$__rate_interval]))",
                    "dead letters",
                ),
            ],
            "ops",
            "HTTP attempts (retries included) and deliveries given up on.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Delivery attempt latency",
            quantiles("healthscore_alerts_delivery_latency_seconds", "destination"),
            "s",
            "Time of one delivery attempt (HTTP request or Kafka send), per destination.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Destination health",
            [("min by (destination) (healthscore_alerts_destination_healthy)", "{{destination}}")],
            "short",
            "1 = healthy, 0 = marked unhealthy after repeated failures.",
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Pending deliveries",
            [("sum by (destination) (healthscore_alerts_pending_deliveries)", "{{destination}}")],
            "short",
            "Outbox rows waiting per destination. A growing queue behind one destination is"
            " that destination's problem; the others keep flowing.",
        ),
        8,
        8,
    )

    layout.row("API")
    red_row(
        layout,
        "api",
        "healthscore_api_requests_total",
        ("healthscore_api_request_duration_seconds", "Request duration"),
    )
    layout.add(
        stat(
            "Model versions published (24h)",
            "sum(increase(healthscore_api_models_published_total[24h]))",
            "short",
            "Published and rolled-back model versions acknowledged by Kafka.",
        ),
        6,
        4,
    )

    return {
        "__inputs": [],
        "annotations": {"list": []},
        "description": "Healthscore: ingest, scoring, alert delivery and the management API.",
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": layout.panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["healthscore"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "Healthscore",
        "uid": "healthscore",
        "version": 1,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
