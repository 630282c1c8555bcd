"""Per-account state: de-duplication, retention, order independence, profile, serialisation."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from engine_support import ALL_METRICS, AS_OF, T0, event, events, published
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthscore.engine import (
    RETENTION_DAYS,
    SEEN_EVENT_IDS,
    AccountState,
    Profile,
    apply_event,
    evaluate_values,
    new_state,
    score,
)
from schemas.events import Event

EVERYTHING = published(
    {
        "id": "everything",
        "name": "Every metric kind",
        "categories": [
            {
                "name": "All",
                "weight": 1,
                "indicators": [
                    {"name": f"m{i}", "metric": m, "max_points": 1, "good": 2, "average": 1}
                    for i, m in enumerate(ALL_METRICS)
                ],
            }
        ],
    }
)


def build(evs: list[Event]) -> AccountState:
    state = new_state("acme")
    for e in evs:
        apply_event(state, e)
    return state


def login(i: int, at: dt.datetime, user: str = "u1") -> Event:
    return event(f"login-{i}", "usage", {"metric": "login", "user_id": user}, at)


def test_new_state_is_empty() -> None:
    state = new_state("acme")
    assert state.account_id == "acme"
    assert state.profile == Profile()
    assert AccountState.from_bytes(state.to_bytes()) == state


def test_duplicate_event_is_refused_and_changes_nothing() -> None:
    state = new_state("acme")
    e = login(1, T0)
    assert apply_event(state, e) is True
    before = state.to_bytes()
    assert apply_event(state, e) is False
    assert state.to_bytes() == before


def test_events_older_than_retention_are_refused() -> None:
    state = new_state("acme")
    assert apply_event(state, login(1, T0 + dt.timedelta(days=RETENTION_DAYS)))
    assert apply_event(state, login(2, T0 + dt.timedelta(days=1))) is True  # oldest kept day
    assert apply_event(state, login(3, T0 + dt.timedelta(hours=23))) is False
    # account events only carry last-write-wins profile fields: accepted at any age
    assert apply_event(
        state, event("acct", "account", {"licenses": 4}, T0 - dt.timedelta(days=900))
    )
    assert state.profile.licenses == 4


def test_pruning_drops_days_that_left_retention() -> None:
    state = new_state("acme")
    apply_event(state, login(1, T0))
    apply_event(
        state, event("t", "ticket", {"ticket_id": "t1", "status": "closed", "priority": "low"}, T0)
    )
    assert state.series["usage"]
    assert state.tickets
    apply_event(state, login(2, T0 + dt.timedelta(days=RETENTION_DAYS)))
    [columns] = state.series["usage"].values()
    newest = T0.toordinal() - dt.date(1970, 1, 1).toordinal() + RETENTION_DAYS
    assert columns == [[newest], [1], [0]]  # days, counts, quantity excess over 1
    assert state.tickets == {}  # closed and out of retention
    # the user masks (any usage, and per metric) shifted with the base day: one day, the newest
    assert state.users == {
        "*": {"u1": format(1 << (RETENTION_DAYS - 1), "x")},
        "login|*": {"u1": format(1 << (RETENTION_DAYS - 1), "x")},
    }


def test_profile_is_last_write_wins_per_field_by_event_time() -> None:
    newer = event("a2", "account", {"segment": "enterprise"}, T0 + dt.timedelta(days=2))
    older = event(
        "a1", "account", {"segment": "smb", "licenses": 10, "renewal_date": "2024-12-31"}, T0
    )
    for order in ([older, newer], [newer, older]):
        state = build(order)
        assert state.profile == Profile(
            segment="enterprise", licenses=10, renewal_date=dt.date(2024, 12, 31)
        )


def test_same_time_profile_updates_break_ties_by_event_id() -> None:
    a = event("a", "account", {"owner": "ana"}, T0)
    b = event("b", "account", {"owner": "bo"}, T0)
    assert build([a, b]).profile.owner == build([b, a]).profile.owner


def test_text_is_not_kept_in_state() -> None:
    secret = "Our migration to Competitor X is scheduled"
    state = build(
        [
            event(
                "t",
                "ticket",
                {"ticket_id": "t1", "status": "opened", "priority": "low", "text": secret},
                T0,
            )
        ]
    )
    assert b"Competitor" not in state.to_bytes()
    [columns] = state.series["ticket"].values()  # but its sentiment is
    assert columns[7] == [1]  # one text scored


def test_seen_ids_are_bounded_and_forget_the_oldest() -> None:
    state = new_state("acme")
    first = login(0, T0)
    apply_event(state, first)
    for i in range(1, SEEN_EVENT_IDS + 1):
        apply_event(state, login(i, T0 + dt.timedelta(seconds=i)))
    assert len(state.seen) == 8 * SEEN_EVENT_IDS
    assert apply_event(state, login(SEEN_EVENT_IDS, T0)) is False  # recent: still a duplicate
    assert apply_event(state, first) is True  # forgotten after SEEN_EVENT_IDS newer events


def test_usage_keys_are_bounded() -> None:
    state = new_state("acme")
    for i in range(300):
        apply_event(
            state, event(f"f{i}", "usage", {"metric": "feature_used", "feature": f"f{i}"}, T0)
        )
    assert len(state.series["usage"]) == 257
    assert "feature_used|~other" in state.series["usage"]


def test_from_bytes_refuses_unknown_versions() -> None:
    with pytest.raises(ValueError, match="unsupported account state format version 99"):
        AccountState.from_bytes(b'{"v": 99}')


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.randoms(use_true_random=False))
def test_same_events_in_any_order_give_the_same_state_and_score(
    evs: list[Event], rnd: random.Random
) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = build(evs), build(shuffled)
    assert a == b
    assert score(a, EVERYTHING, AS_OF) == score(b, EVERYTHING, AS_OF)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(max_size=25), st.data())
def test_a_duplicated_event_changes_nothing(evs: list[Event], data: st.DataObject) -> None:
    if not evs:
        return
    dup = data.draw(st.sampled_from(evs))
    position = data.draw(st.integers(0, len(evs)))
    with_dup = [*evs[:position], dup, *evs[position:]]
    assert build(with_dup) == build(evs)
    assert evaluate_values(build(with_dup), EVERYTHING.model, AS_OF) == evaluate_values(
        build(evs), EVERYTHING.model, AS_OF
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(max_size=60, span_days=400))
def test_serialisation_round_trips(evs: list[Event]) -> None:
    state = build(evs)
    data = state.to_bytes()
    again = AccountState.from_bytes(data)
    assert again == state
    assert again.to_bytes() == data
    assert list(again.seen) == list(state.seen)  # arrival order survives
    assert score(again, EVERYTHING, AS_OF) == score(state, EVERYTHING, AS_OF)
    # and the restored state keeps applying events the same way
    extra = login(999, AS_OF, user="u9")
    apply_event(state, extra)
    apply_event(again, extra)
    assert again == state
