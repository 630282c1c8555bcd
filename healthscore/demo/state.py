"""What the demo has seen: accounts' statuses, recent status changes with their drivers, alerts
(from ``health.alerts`` and at the local Slack / CRM receiver), events/s and scoring latency.

Plain data updated by the observers and read by the live view and the summary; no I/O here.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from healthscore.simulate.personas import PERSONAS
from healthscore.simulate.population import SimAccount
from schemas.messages import AlertRaised, Driver, ScoreChanged, Status

STATUSES: tuple[Status, ...] = ("red", "amber", "green")


def driver_text(driver: Driver) -> str:
    def value(v: float | None) -> str:
        return "-" if v is None else f"{v:.3g}"

    return (
        f"{driver.indicator} {value(driver.old_value)}\u2192{value(driver.new_value)} "
        f"({driver.score_impact:+.1f})"
    )


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of ``samples`` by the nearest-rank method; None when empty."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


@dataclass
class AccountView:
    account: SimAccount
    status: Status | None = None
    score: float | None = None
    model_id: str | None = None
    model_version: int | None = None
    statuses_seen: list[Status] = field(default_factory=list)  # since the live phase began


@dataclass(frozen=True)
class StatusChange:
    at: float  # wall time received
    sim_time: dt.datetime
    account_id: str
    name: str
    persona: str
    old_status: Status | None
    new_status: Status
    score: float
    drivers: tuple[str, ...]


@dataclass(frozen=True)
class Webhook:
    at: float
    destination: str  # "slack" or "crm"
    text: str
    account_ids: tuple[str, ...]
    rule: str | None


class DemoState:
    def __init__(self, accounts: Sequence[SimAccount], *, recent: int = 10) -> None:
        self.accounts = {a.account_id: AccountView(a) for a in accounts}
        self._id_pattern = re.compile("|".join(re.escape(a) for a in sorted(self.accounts)))
        self.live = False
        self.live_since: float | None = None
        self.changes: collections.deque[StatusChange] = collections.deque(maxlen=recent)
        self.webhooks: collections.deque[Webhook] = collections.deque(maxlen=recent)
        self.scores_seen = 0
        self.alerts_by_rule: collections.Counter[str] = collections.Counter()
        self.alerts_by_account: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.received: collections.Counter[str] = collections.Counter()
        self.received_by_account: dict[str, set[str]] = collections.defaultdict(set)
        self.latencies: list[float] = []
        self.events_sent = 0
        self._sent_window: collections.deque[tuple[float, int]] = collections.deque()
        self.sim_now: dt.datetime | None = None

    # -- updates -----------------------------------------------------------------------------

    def go_live(self, at: float) -> None:
        """From now on status changes are the story (the history before was pre-seeding)."""
        self.live, self.live_since = True, at
        for view in self.accounts.values():
            view.statuses_seen = [view.status] if view.status else []

    def on_sent(self, count: int, at: float) -> None:
        self.events_sent += count
        self._sent_window.append((at, count))

    def events_per_second(self, now: float, window: float = 5.0) -> float:
        while self._sent_window and self._sent_window[0][0] < now - window:
            self._sent_window.popleft()
        return sum(n for _, n in self._sent_window) / window

    def on_score(self, change: ScoreChanged, at: float, latency: float | None) -> None:
        self.scores_seen += 1
        view = self.accounts.get(change.account_id)
        if view is None:
            return
        view.status, view.score, view.model_id, view.model_version = (
            change.new_status,
            change.new_score,
            change.model_id,
            change.model_version,
        )
        if latency is not None and self.live:
            self.latencies.append(latency)
        if change.old_status == change.new_status:
            return
        if self.live:
            view.statuses_seen.append(change.new_status)
        self.changes.appendleft(
            StatusChange(
                at=at,
                sim_time=change.scored_at,
                account_id=change.account_id,
                name=view.account.name,
                persona=view.account.persona,
                old_status=change.old_status,
                new_status=change.new_status,
                score=change.new_score,
                drivers=tuple(
                    driver_text(d) for d in change.drivers[:3] if abs(d.score_impact) >= 0.05
                ),
            )
        )

    def on_alert(self, alert: AlertRaised) -> None:
        self.alerts_by_rule[alert.rule] += 1
        self.alerts_by_account[alert.account_id][alert.rule] += 1

    def on_webhook(self, destination: str, body: bytes, at: float) -> None:
        """A request that reached the local receiver (``slack`` or ``crm``)."""
        self.received[destination] += 1
        text, rule = "", None
        try:
            doc: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if destination == "slack" and isinstance(doc, dict):
            text = str(doc.get("text", ""))
        elif destination == "crm" and isinstance(doc, dict):
            alert = (doc.get("data") or {}).get("alert") or {}
            rule = alert.get("rule")
            view = self.accounts.get(str(alert.get("account_id")))
            text = f"{rule}: {view.account.name if view else alert.get('account_id')}"
        # Slack digests name several accounts; every message links to its accounts by id.
        ids = tuple(dict.fromkeys(self._id_pattern.findall(body.decode(errors="replace"))))
        for account_id in ids:
            self.received_by_account[account_id].add(destination)
        self.webhooks.appendleft(Webhook(at, destination, text, ids, rule))

    # -- reads -------------------------------------------------------------------------------

    def per_status(self) -> dict[str, int]:
        counts: collections.Counter[str] = collections.Counter(
            v.status or "unscored" for v in self.accounts.values()
        )
        return {s: counts.get(s, 0) for s in (*STATUSES, "unscored")}

    def per_persona(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for persona in PERSONAS:
            views = [v for v in self.accounts.values() if v.account.persona == persona]
            if not views:
                continue
            statuses: collections.Counter[str] = collections.Counter(
                v.status or "unscored" for v in views
            )
            rules: collections.Counter[str] = collections.Counter()
            for v in views:
                rules.update(self.alerts_by_account.get(v.account.account_id, {}))
            out[persona] = {
                "accounts": len(views),
                "status": {s: statuses.get(s, 0) for s in (*STATUSES, "unscored")},
                "alerts_by_rule": dict(sorted(rules.items())),
                "accounts_alerted": sum(
                    1 for v in views if self.alerts_by_account.get(v.account.account_id)
                ),
                "accounts_alerted_at_receiver": sum(
                    1 for v in views if self.received_by_account.get(v.account.account_id)
                ),
            }
        return out

    def latency(self) -> dict[str, float | int | None]:
        return {
            "samples": len(self.latencies),
            "p50": percentile(self.latencies, 0.50),
            "p99": percentile(self.latencies, 0.99),
            "mean": statistics.fmean(self.latencies) if self.latencies else None,
        }

    def accounts_summary(self) -> list[dict[str, Any]]:
        return [
            {
                "account_id": v.account.account_id,
                "name": v.account.name,
                "persona": v.account.persona,
                "segment": v.account.segment,
                "lifecycle_stage": v.account.lifecycle_stage,
                "status": v.status,
                "score": v.score,
                "model_id": v.model_id,
                "model_version": v.model_version,
                "statuses_seen_live": v.statuses_seen,
                "alerts": dict(self.alerts_by_account.get(v.account.account_id, {})),
                "receiver_destinations": sorted(
                    self.received_by_account.get(v.account.account_id, set())
                ),
            }
            for v in self.accounts.values()
        ]
