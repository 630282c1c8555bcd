"""The demo's terminal view (rich): a live dashboard refreshed every second, a plain progress
line when stdout is not a terminal, and the closing summary."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from healthscore.demo.state import STATUSES, DemoState

STATUS_STYLE = {"red": "bold red", "amber": "bold yellow", "green": "bold green", None: "dim"}


def _status(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLE.get(status, "dim"))


def _ms(seconds: float | int | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def header_line(state: DemoState, phase: str, now: float) -> str:
    latency = state.latency()
    sim = f"{state.sim_now:%Y-%m-%d %H:%M}" if state.sim_now else "-"
    return (
        f"{phase} \u00b7 simulated time {sim} \u00b7 {state.events_per_second(now):.0f} events/s "
        f"\u00b7 {state.events_sent} events sent \u00b7 scoring latency p50 "
        f"{_ms(latency['p50'])} p99 {_ms(latency['p99'])}"
    )


def dashboard(state: DemoState, phase: str, height: int = 40) -> RenderableType:
    """The live view, sized for a terminal ``height`` lines tall (one line per row)."""
    now = time.time()
    rows = max(2, (height - 24) // 2)
    counts = state.per_status()
    statuses = Table(title="Accounts per status", expand=True)
    statuses.add_column("persona")
    for s in STATUSES:
        statuses.add_column(s, justify="right", style=STATUS_STYLE[s])
    statuses.add_column("alerted", justify="right")
    for persona, row in state.per_persona().items():
        statuses.add_row(
            persona,
            *(str(row["status"][s]) for s in STATUSES),
            str(row["accounts_alerted"]),
        )
    statuses.add_row(
        Text("all", style="bold"),
        *(str(counts[s]) for s in STATUSES),
        str(sum(1 for a in state.alerts_by_account.values() if a)),
    )

    changes = Table(title="Latest status changes and their drivers", expand=True)
    for column in ("account", "persona", "from", "to", "score"):
        changes.add_column(column, no_wrap=True, overflow="ellipsis")
    changes.add_column("drivers", no_wrap=True, overflow="ellipsis", ratio=1)
    for c in list(state.changes)[:rows]:
        changes.add_row(
            c.name,
            c.persona,
            _status(c.old_status),
            _status(c.new_status),
            f"{c.score:.1f}",
            "; ".join(c.drivers),
        )

    alerts = Table(title="Alerts at the local Slack and CRM receiver", expand=True)
    alerts.add_column("age", justify="right")
    alerts.add_column("to")
    alerts.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for w in list(state.webhooks)[:rows]:
        alerts.add_row(f"{now - w.at:.0f}s", w.destination, w.text)

    return Panel(
        Group(statuses, changes, alerts),
        title="Healthscore demo",
        subtitle=header_line(state, phase, now),
    )


def summary_table(summary: dict[str, Any]) -> RenderableType:
    personas = Table(title="Outcome per persona")
    personas.add_column("persona")
    personas.add_column("accounts", justify="right")
    for s in STATUSES:
        personas.add_column(s, justify="right", style=STATUS_STYLE[s])
    personas.add_column("alerted (receiver)", justify="right")
    personas.add_column("alerts by rule")
    for persona, row in summary["personas"].items():
        personas.add_row(
            persona,
            str(row["accounts"]),
            *(str(row["status"][s]) for s in STATUSES),
            f"{row['accounts_alerted']} ({row['accounts_alerted_at_receiver']})",
            ", ".join(f"{k} {v}" for k, v in row["alerts_by_rule"].items()) or "-",
        )
    latency = summary["latency_seconds"]
    timings = summary["timings_seconds"]
    lines = [
        f"events sent {summary['events']['sent']} (accepted {summary['events']['accepted']}, "
        f"rejected {summary['events']['rejected']}), history {summary['events']['history']}",
        "accounts per status: "
        + ", ".join(f"{k} {v}" for k, v in summary["accounts_per_status"].items()),
        "alerts by rule: "
        + (", ".join(f"{k} {v}" for k, v in summary["alerts_by_rule"].items()) or "none"),
        f"webhooks received: slack {summary['webhooks_received'].get('slack', 0)}, "
        f"crm {summary['webhooks_received'].get('crm', 0)}",
        f"scoring latency (event sent \u2192 health.scores): p50 {_ms(latency['p50'])}, "
        f"p99 {_ms(latency['p99'])} over {latency['samples']} score changes",
        "timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()),
    ]
    return Group(personas, Text("\n".join(lines)))
