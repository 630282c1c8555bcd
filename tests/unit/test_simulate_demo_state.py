"""The demo's bookkeeping (pure): statuses, status changes with drivers, alerts at the receiver,
latency percentiles."""

from __future__ import annotations

import datetime as dt

import orjson

from healthscore.demo.state import DemoState, percentile
from healthscore.simulate.population import build_population
from schemas.messages import AccountProfile, AlertRaised, Driver, ScoreChanged

T = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)


def _change(account_id: str, old: str | None, new: str, score: float) -> ScoreChanged:
    return ScoreChanged.model_validate(
        {
            "account_id": account_id,
            "profile": AccountProfile(),
            "model_id": "adoption",
            "model_version": 0,
            "old_score": None,
            "new_score": score,
            "old_status": old,
            "new_status": new,
            "categories": [],
            "indicators": [],
            "drivers": [
                Driver(
                    category="Support",
                    indicator="Open high-priority tickets",
                    old_value=0,
                    new_value=3,
                    old_level="good",
                    new_level="poor",
                    points_delta=-5,
                    score_impact=-8.3,
                )
            ],
            "cause": "event",
            "scored_at": T,
            "event_time": T,
        }
    )


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


def test_scores_changes_and_alerts_per_persona() -> None:
    accounts = build_population(5, seed=1, history_days=35)
    state = DemoState(accounts)
    healthy, _, churning, *_ = accounts
    state.on_score(_change(healthy.account_id, None, "green", 96.0), 1.0, None)
    state.on_score(_change(churning.account_id, None, "green", 80.0), 1.0, None)
    state.go_live(2.0)
    state.on_score(_change(churning.account_id, "green", "red", 30.0), 3.0, 0.25)
    state.on_score(_change(churning.account_id, "red", "red", 29.0), 3.5, 0.75)

    assert state.per_status() == {"red": 1, "amber": 0, "green": 1, "unscored": 3}
    assert state.latency()["samples"] == 2
    assert state.latency()["p50"] == 0.25
    latest = state.changes[0]
    assert (latest.account_id, latest.old_status, latest.new_status) == (
        churning.account_id,
        "green",
        "red",
    )
    assert latest.drivers == ("Open high-priority tickets 0\u21923 (-8.3)",)

    alert = AlertRaised(
        alert_id="a1",
        rule="red_alert",
        rule_name="red_alert",
        account_id=churning.account_id,
        profile=AccountProfile(),
        old_score=80,
        new_score=30,
        old_status="green",
        new_status="red",
        drivers=[],
        model_id="adoption",
        model_version=0,
        raised_at=T,
    )
    state.on_alert(alert)
    crm = {"type": "health.alert", "data": {"alert": alert.model_dump(mode="json")}}
    state.on_webhook("crm", orjson.dumps(crm), 4.0)
    digest = {
        "text": "2 health alerts",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<http://x/{a.account_id}>"}}
            for a in (churning, accounts[3])
        ],
    }
    state.on_webhook("slack", orjson.dumps(digest), 5.0)

    personas = state.per_persona()
    assert personas["churning"]["alerts_by_rule"] == {"red_alert": 1}
    assert personas["churning"]["accounts_alerted_at_receiver"] == 1
    assert personas["healthy"]["accounts_alerted"] == 0
    assert personas["expanding"]["accounts_alerted_at_receiver"] == 1
    assert state.webhooks[0].account_ids == (churning.account_id, accounts[3].account_id)
    summary = {a["account_id"]: a for a in state.accounts_summary()}
    assert summary[churning.account_id]["statuses_seen_live"] == ["green", "red"]
    assert summary[churning.account_id]["receiver_destinations"] == ["crm", "slack"]
