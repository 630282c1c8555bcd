"""Rule evaluation is pure: a score change + rule state + now -> alerts + new state."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from schemas.messages import ScoreChanged, Status
from services.alerts.config import Rule, default_rules
from services.alerts.rules import (
    RuleState,
    evaluate,
    evaluate_time,
    next_due_at,
)

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
RULES: TypeAdapter[tuple[Rule, ...]] = TypeAdapter(tuple[Rule, ...])


def change(
    old: Status | None,
    new: Status,
    *,
    at: dt.datetime,
    old_score: float | None = None,
    score: float = 50.0,
    stage: str = "adoption",
    renewal: str | None = None,
    usage_level: str = "good",
    usage_value: float | None = 0.5,
) -> ScoreChanged:
    data: dict[str, Any] = {
        "account_id": "acme",
        "profile": {
            "name": "Acme",
            "lifecycle_stage": stage,
            "segment": "smb",
            "owner": "ann",
            "renewal_date": renewal,
        },
        "model_id": "default",
        "model_version": 1,
        "old_score": old_score,
        "new_score": score,
        "old_status": old,
        "new_status": new,
        "categories": [
            {"name": "usage", "weight": 1, "score": 50, "earned_points": 5, "possible_points": 10}
        ],
        "indicators": [
            {
                "category": "Usage",
                "name": "license_utilisation",
                "metric": "ratio",
                "value": usage_value,
                "level": usage_level,
                "points": 5,
                "max_points": 10,
                "counted": True,
            }
        ],
        "drivers": [
            {
                "category": "usage",
                "indicator": "license_utilisation",
                "old_value": 0.8,
                "new_value": usage_value,
                "old_level": "good",
                "new_level": usage_level,
                "points_delta": -5,
                "score_impact": -12.5,
            }
        ],
        "cause": "time",
        "scored_at": at.isoformat(),
        "event_time": None,
    }
    return ScoreChanged.model_validate(data)


def run(rules: tuple[Rule, ...], *changes: ScoreChanged) -> tuple[list[str], RuleState]:
    state = RuleState()
    fired: list[str] = []
    for c in changes:
        result = evaluate(rules, c, state, c.scored_at)
        fired.extend(a.rule_name for a in result.alerts)
        state = result.state
    return fired, state


def test_red_alert_supersedes_status_drop_and_drop_fires_alone() -> None:
    rules = default_rules()
    fired, _ = run(rules, change("green", "red", at=T0))
    assert fired == ["red_alert"]
    fired, _ = run(rules, change("green", "amber", at=T0))
    assert fired == ["status_drop"]
    fired, _ = run(rules, change("amber", "green", at=T0))
    assert fired == []


def test_flapping_status_pages_once_within_cooldown_and_again_after() -> None:
    rules = RULES.validate_python([{"type": "red_alert", "cooldown_hours": 24}])
    hour = dt.timedelta(hours=1)
    fired, state = run(
        rules,
        change("amber", "red", at=T0),
        change("red", "amber", at=T0 + hour),
        change("amber", "red", at=T0 + 2 * hour),
        change("red", "amber", at=T0 + 3 * hour),
        change("amber", "red", at=T0 + 30 * hour),
    )
    assert fired == ["red_alert", "red_alert"]
    assert state.last_fired["red_alert"] == T0 + 30 * hour


def test_alert_carries_change_and_drivers_with_stable_id() -> None:
    c = change("amber", "red", at=T0, old_score=55, score=30)
    first = evaluate(default_rules(), c, RuleState(), T0).alerts
    again = evaluate(default_rules(), c, RuleState(), T0).alerts
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    alert = first[0]
    assert (alert.rule, alert.old_score, alert.new_score, alert.new_status) == (
        "red_alert",
        55,
        30,
        "red",
    )
    assert alert.drivers[0].indicator == "license_utilisation"
    assert alert.raised_at == T0


def test_sustained_decline_fires_while_green_within_window_only() -> None:
    rules = RULES.validate_python(
        [{"type": "sustained_decline", "points": 10, "within_days": 7, "cooldown_hours": 1}]
    )
    day = dt.timedelta(days=1)
    # 90 -> 85 -> 79: a fall of 11 within 2 days, status green all along.
    fired, state = run(
        rules,
        change(None, "green", at=T0, score=90),
        change("green", "green", at=T0 + day, score=85),
        change("green", "green", at=T0 + 2 * day, score=79),
    )
    assert fired == ["sustained_decline"]
    # After firing, the baseline restarts at 79: another 5 points down does not fire.
    again = evaluate(
        rules, change("green", "green", at=T0 + 3 * day, score=74), state, T0 + 3 * day
    )
    assert again.alerts == ()
    # A slow decline spread over more than the window never fires.
    slow = [change("green", "green", at=T0 + i * 3 * day, score=90 - 4 * i) for i in range(6)]
    fired, _ = run(rules, *slow)
    assert fired == []


def test_renewal_at_risk_fires_on_time_alone_once_per_episode() -> None:
    rules = RULES.validate_python([{"type": "renewal_at_risk", "within_days": 30}])
    c = change("green", "amber", at=T0, renewal="2025-05-01")
    first = evaluate(rules, c, RuleState(), T0)
    assert first.alerts == ()
    due = next_due_at(rules, first.state)
    assert due == dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    early = evaluate_time(rules, first.state, due - dt.timedelta(hours=1))
    assert early.alerts == ()
    on_time = evaluate_time(rules, first.state, due)
    assert [(a.rule, a.details["days_to_renewal"]) for a in on_time.alerts] == [
        ("renewal_at_risk", 30)
    ]
    # Still true later: already active, so no second alert, and nothing is due any more.
    later = evaluate_time(rules, on_time.state, due + dt.timedelta(days=40 * 24))
    assert later.alerts == ()
    assert next_due_at(rules, on_time.state) is None


def test_onboarding_stalled_after_days_of_poor_usage() -> None:
    rules = RULES.validate_python([{"type": "onboarding_stalled", "for_days": 10}])
    day = dt.timedelta(days=1)
    poor = change(None, "amber", at=T0, stage="onboarding", usage_level="poor", usage_value=0.0)
    first = evaluate(rules, poor, RuleState(), T0)
    assert first.alerts == ()
    assert first.state.usage_poor_since == T0
    assert next_due_at(rules, first.state) == T0 + 10 * day
    fired = evaluate_time(rules, first.state, T0 + 10 * day)
    assert [a.rule for a in fired.alerts] == ["onboarding_stalled"]
    # Usage recovers: the condition clears and the rule re-arms.
    good = change("amber", "green", at=T0 + 11 * day, stage="onboarding", usage_level="good")
    recovered = evaluate(rules, good, fired.state, T0 + 11 * day)
    assert recovered.state.usage_poor_since is None
    assert recovered.state.active == ()
    # Not in onboarding: poor usage does not matter.
    adopted = change(None, "amber", at=T0, stage="adoption", usage_level="poor")
    assert (
        evaluate_time(rules, evaluate(rules, adopted, RuleState(), T0).state, T0 + 99 * day).alerts
        == ()
    )


def test_expansion_opportunity_green_and_usage_above() -> None:
    rules = RULES.validate_python(
        [{"type": "expansion_opportunity", "indicators": ["license_utilisation"], "above": 0.9}]
    )
    fired, _ = run(rules, change(None, "green", at=T0, usage_value=0.95))
    assert fired == ["expansion_opportunity"]
    fired, _ = run(rules, change(None, "amber", at=T0, usage_value=0.95))
    assert fired == []
    fired, _ = run(rules, change(None, "green", at=T0, usage_value=0.5))
    assert fired == []


def test_state_round_trips_through_json() -> None:
    _, state = run(default_rules(), change("green", "red", at=T0))
    assert RuleState.from_json(state.to_json()) == state
    assert RuleState.from_json(None) == RuleState()


statuses = st.sampled_from(["red", "amber", "green"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(statuses, st.integers(min_value=1, max_value=120)), max_size=30))
def test_never_two_alerts_of_a_rule_within_its_cooldown(steps: list[tuple[str, int]]) -> None:
    rules = default_rules()
    cooldowns = {r.rule_name: dt.timedelta(hours=r.cooldown_hours) for r in rules}
    state = RuleState()
    at = T0
    previous: Status | None = None
    raised: list[tuple[str, dt.datetime]] = []
    for status, minutes in steps:
        at += dt.timedelta(minutes=minutes * 30)
        result = evaluate(rules, change(previous, status, at=at), state, at)  # type: ignore[arg-type]
        raised.extend((a.rule_name, at) for a in result.alerts)
        state, previous = result.state, status  # type: ignore[assignment]
    for name, cooldown in cooldowns.items():
        times = [t for n, t in raised if n == name]
        assert all(b - a >= cooldown for a, b in itertools.pairwise(times))


def test_first_score_never_pages() -> None:
    fired, _ = run(default_rules(), change(None, "red", at=T0))
    assert fired == []
