"""Alert rule evaluation: pure functions of (rules, a score change, the account's rule state, now).

Nothing here reads a clock, a database or the network. The consumer calls :func:`evaluate` for
every ``health.scores`` record (``now`` = the record's ``scored_at``, so a backlog replays exactly
as it happened) and :func:`evaluate_time` when :func:`next_due_at` says time alone may make a rule
fire (a renewal date coming closer, onboarding usage staying poor), because the scorer emits no
record while an account's score stands still.

Semantics (docs/alerts.md):

- ``status_drop`` and ``red_alert`` fire on the transition in the record;
  ``sustained_decline`` fires when the score has fallen by ``points`` from its highest value
  within ``within_days`` (counting only scores since the rule last fired).
- ``renewal_at_risk``, ``onboarding_stalled`` and ``expansion_opportunity`` are conditions: they
  fire when the condition becomes true and re-arm when it becomes false again.
- Every rule has a cooldown per account: a rule that fired less than ``cooldown_hours`` ago does
  not fire again, so a status that flaps inside the cooldown pages once.
- ``supersedes``: when a rule fires together with rules it supersedes (``red_alert`` supersedes
  ``status_drop`` by default), only it is raised; the superseded rules' cooldowns start too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.messages import AlertRaised, ScoreChanged, Status
from services.alerts.config import (
    ExpansionOpportunityRule,
    OnboardingStalledRule,
    RedAlertRule,
    RenewalAtRiskRule,
    Rule,
    StatusDropRule,
    SustainedDeclineRule,
)

STATUS_RANK: dict[Status, int] = {"red": 0, "amber": 1, "green": 2}
# Bound on the score history kept for sustained_decline (oldest points go first).
MAX_HISTORY = 1000
_ALERT_NAMESPACE = uuid.UUID("8f4b1d2e-6c0a-4e7b-9a55-3f1e2d7c9b10")


class RuleState(BaseModel):
    """What the rules remember about one account between records (stored as JSON)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: Literal[1] = 1
    last_fired: dict[str, AwareDatetime] = {}
    active: tuple[str, ...] = ()  # condition rules that fired and whose condition still holds
    history: tuple[tuple[AwareDatetime, float], ...] = ()  # (scored_at, score)
    usage_poor_since: AwareDatetime | None = None
    last: ScoreChanged | None = None  # the latest record, for time-driven evaluation

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RuleState:
        return cls() if not data else cls.model_validate(data)


@dataclass(frozen=True)
class Evaluation:
    alerts: tuple[AlertRaised, ...]
    state: RuleState
    suppressed: tuple[str, ...] = field(default=())  # rule names held back by their cooldown


@dataclass(frozen=True)
class _Candidate:
    rule: Rule
    details: dict[str, Any]


def evaluate(
    rules: Sequence[Rule], change: ScoreChanged, state: RuleState, now: dt.datetime
) -> Evaluation:
    """The alerts one ``health.scores`` record raises, and the account's new rule state."""
    return _evaluate(rules, change, state, now)


def evaluate_time(rules: Sequence[Rule], state: RuleState, now: dt.datetime) -> Evaluation:
    """Re-check the condition rules against the latest record as time passes."""
    return _evaluate(rules, None, state, now)


def next_due_at(rules: Sequence[Rule], state: RuleState) -> dt.datetime | None:
    """The earliest time at which :func:`evaluate_time` could raise an alert (None: never)."""
    last = state.last
    if last is None:
        return None
    due: list[dt.datetime] = []
    for rule in rules:
        name = rule.rule_name
        if name in state.active:
            continue
        start: dt.datetime | None = None
        if isinstance(rule, OnboardingStalledRule):
            if state.usage_poor_since is not None and last.profile.lifecycle_stage in rule.stages:
                start = state.usage_poor_since + dt.timedelta(days=rule.for_days)
        elif isinstance(rule, RenewalAtRiskRule):
            renewal = _renewal_date(last)
            if renewal is not None and last.new_status in rule.statuses:
                start = _midnight(renewal) - dt.timedelta(days=rule.within_days)
        if start is None:
            continue
        fired = state.last_fired.get(name)
        if fired is not None:
            start = max(start, fired + dt.timedelta(hours=rule.cooldown_hours))
        due.append(start)
    return min(due) if due else None


def _evaluate(
    rules: Sequence[Rule], change: ScoreChanged | None, state: RuleState, now: dt.datetime
) -> Evaluation:
    snapshot = change if change is not None else state.last
    if snapshot is None:
        return Evaluation((), state)
    usage_poor_since = state.usage_poor_since
    history = state.history
    if change is not None:
        history = _trim_history((*history, (change.scored_at, change.new_score)), rules, now)
        usage_poor_since = _usage_poor_since(rules, change, state.usage_poor_since, now)

    candidates: list[_Candidate] = []
    active = set(state.active)
    for rule in rules:
        name = rule.rule_name
        if isinstance(rule, StatusDropRule | RedAlertRule | SustainedDeclineRule):
            if change is None:
                continue
            details = _transition(rule, change, history, state.last_fired.get(name), now)
            if details is not None:
                candidates.append(_Candidate(rule, details))
            continue
        details = _condition(rule, snapshot, usage_poor_since, now)
        if details is None:
            active.discard(name)
        elif name not in active:
            candidates.append(_Candidate(rule, details))

    suppressed = [c for c in candidates if _cooling_down(c.rule, state.last_fired, now)]
    fired = [c for c in candidates if c not in suppressed]
    superseded = {s for c in fired for s in c.rule.supersedes}
    raised = [c for c in fired if c.rule.rule_name not in superseded]
    last_fired = dict(state.last_fired)
    for c in fired:
        last_fired[c.rule.rule_name] = now
        if not isinstance(c.rule, StatusDropRule | RedAlertRule | SustainedDeclineRule):
            active.add(c.rule.rule_name)
    alerts = tuple(_alert(c, snapshot, now) for c in raised)
    new_state = RuleState(
        last_fired=last_fired,
        active=tuple(sorted(active)),
        history=history,
        usage_poor_since=usage_poor_since,
        last=snapshot,
    )
    return Evaluation(alerts, new_state, tuple(c.rule.rule_name for c in suppressed))


def _transition(
    rule: StatusDropRule | RedAlertRule | SustainedDeclineRule,
    change: ScoreChanged,
    history: tuple[tuple[dt.datetime, float], ...],
    last_fired: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any] | None:
    if isinstance(rule, StatusDropRule):
        if change.old_status is not None and (
            STATUS_RANK[change.new_status] < STATUS_RANK[change.old_status]
        ):
            return {"from_status": change.old_status, "to_status": change.new_status}
        return None
    if isinstance(rule, RedAlertRule):
        # A first score (no old status) is not a change: backfills and new accounts do not page.
        if change.new_status == "red" and change.old_status not in (None, "red"):
            return {"from_status": change.old_status}
        return None
    since = now - dt.timedelta(days=rule.within_days)
    window = [(t, s) for t, s in history if t >= since and (last_fired is None or t >= last_fired)]
    if not window:
        return None
    peak_at, peak = max(window, key=lambda p: (p[1], p[0]))
    fall = round(peak - change.new_score, 1)
    if fall >= rule.points:
        return {
            "fall_points": fall,
            "from_score": peak,
            "from_at": peak_at.isoformat(),
            "within_days": rule.within_days,
        }
    return None


def _condition(
    rule: Rule, snapshot: ScoreChanged, usage_poor_since: dt.datetime | None, now: dt.datetime
) -> dict[str, Any] | None:
    if isinstance(rule, RenewalAtRiskRule):
        renewal = _renewal_date(snapshot)
        if renewal is None or snapshot.new_status not in rule.statuses:
            return None
        days = (renewal - now.astimezone(dt.UTC).date()).days
        if 0 <= days <= rule.within_days:
            return {"renewal_date": renewal.isoformat(), "days_to_renewal": days}
        return None
    if isinstance(rule, OnboardingStalledRule):
        if snapshot.profile.lifecycle_stage not in rule.stages or usage_poor_since is None:
            return None
        stalled = now - usage_poor_since
        if stalled >= dt.timedelta(days=rule.for_days):
            return {
                "usage_poor_since": usage_poor_since.isoformat(),
                "stalled_days": round(stalled.total_seconds() / 86400, 1),
            }
        return None
    if isinstance(rule, ExpansionOpportunityRule):
        if snapshot.new_status != "green":
            return None
        for indicator in _usage_indicators(rule, snapshot):
            if indicator.value is not None and indicator.value > rule.above:
                return {
                    "indicator": indicator.name,
                    "metric": indicator.metric,
                    "value": indicator.value,
                    "above": rule.above,
                }
        return None
    return None


def _usage_indicators(
    rule: OnboardingStalledRule | ExpansionOpportunityRule, change: ScoreChanged
) -> list[Any]:
    if rule.indicators:
        wanted = set(rule.indicators)
        return [i for i in change.indicators if i.name in wanted or i.metric in wanted]
    categories = {c.lower() for c in rule.categories}
    return [i for i in change.indicators if i.category.lower() in categories]


def _usage_poor_since(
    rules: Sequence[Rule],
    change: ScoreChanged,
    previous: dt.datetime | None,
    now: dt.datetime,
) -> dt.datetime | None:
    """When usage became poor (every usage indicator poor or without data), None when it is not.

    With several onboarding rules, the first one's usage selection is the one tracked."""
    rule = next((r for r in rules if isinstance(r, OnboardingStalledRule)), None)
    if rule is None:
        return None
    indicators = _usage_indicators(rule, change)
    poor = bool(indicators) and all(i.level in ("poor", "missing") for i in indicators)
    if not poor:
        return None
    return previous if previous is not None else now


def _trim_history(
    history: tuple[tuple[dt.datetime, float], ...], rules: Sequence[Rule], now: dt.datetime
) -> tuple[tuple[dt.datetime, float], ...]:
    windows = [r.within_days for r in rules if isinstance(r, SustainedDeclineRule)]
    if not windows:
        return ()
    since = now - dt.timedelta(days=max(windows))
    kept = tuple(p for p in history if p[0] >= since)
    return kept[-MAX_HISTORY:]


def _cooling_down(rule: Rule, last_fired: dict[str, dt.datetime], now: dt.datetime) -> bool:
    fired = last_fired.get(rule.rule_name)
    return fired is not None and now - fired < dt.timedelta(hours=rule.cooldown_hours)


def _renewal_date(change: ScoreChanged) -> dt.date | None:
    raw = change.profile.renewal_date
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def alert_id(account_id: str, rule_name: str, now: dt.datetime, scored_at: dt.datetime) -> str:
    """Stable id: the same record evaluated again yields the same id."""
    key = "\x1f".join((account_id, rule_name, now.isoformat(), scored_at.isoformat()))
    return str(uuid.uuid5(_ALERT_NAMESPACE, key))


def _alert(candidate: _Candidate, snapshot: ScoreChanged, now: dt.datetime) -> AlertRaised:
    rule = candidate.rule
    return AlertRaised(
        alert_id=alert_id(snapshot.account_id, rule.rule_name, now, snapshot.scored_at),
        rule=rule.type,
        rule_name=rule.rule_name,
        account_id=snapshot.account_id,
        profile=snapshot.profile,
        old_score=snapshot.old_score,
        new_score=snapshot.new_score,
        old_status=snapshot.old_status,
        new_status=snapshot.new_status,
        drivers=snapshot.drivers,
        model_id=snapshot.model_id,
        model_version=snapshot.model_version,
        raised_at=now,
        details=candidate.details,
    )
