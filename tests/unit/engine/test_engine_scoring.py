"""Scoring, drivers, decay, next_rescore_at and model selection."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from engine_support import AS_OF, T0, event, events, model_docs, published
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthscore.engine import (
    AccountState,
    Profile,
    PublishedModel,
    ScoreCard,
    apply_event,
    default_models,
    drivers,
    evaluate_values,
    new_state,
    next_rescore_at,
    parse_model,
    score,
    score_values,
    select_model,
)
from schemas.events import Event

SLOW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(evs: list[Event]) -> AccountState:
    state = new_state("acme")
    for e in evs:
        apply_event(state, e)
    return state


def values_for(model: PublishedModel, data: st.DataObject) -> list[float | None]:
    n = sum(len(c.indicators) for c in model.model.categories)
    return data.draw(
        st.lists(st.none() | st.floats(-200, 200, allow_nan=False), min_size=n, max_size=n)
    )


def card(model: PublishedModel, values: list[float | None]) -> ScoreCard:
    return score_values(model, values, account_id="acme", as_of=AS_OF)


# -- properties -------------------------------------------------------------------------------


@SLOW
@given(model_docs(), events(max_size=30))
def test_score_is_always_within_0_and_100(doc: dict[str, Any], evs: list[Event]) -> None:
    result = score(build(evs), published(doc), AS_OF)
    assert 0 <= result.score <= 100
    assert result.score == round(result.score, 1)
    assert result.status in ("red", "amber", "green")
    for c in result.categories:
        assert c.score is None or 0 <= c.score <= 100


@SLOW
@given(model_docs(), st.data())
def test_improving_an_indicator_never_lowers_the_score(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    model = published(doc)
    values = values_for(model, data)
    specs = [i for c in model.model.categories for i in c.indicators]
    k = data.draw(st.integers(0, len(specs) - 1))
    if values[k] is None:
        values[k] = 0.0
    step = data.draw(st.floats(0, 100, allow_nan=False))
    better = list(values)
    better[k] = values[k] + (step if specs[k].direction == "higher_is_better" else -step)  # type: ignore[operator]
    assert card(model, better).score >= card(model, values).score


@SLOW
@given(model_docs(), st.data(), st.sampled_from([0.001, 0.25, 3, 7.5, 1000]))
def test_scaling_every_weight_changes_nothing(
    doc: dict[str, Any], data: st.DataObject, factor: float
) -> None:
    model = published(doc)
    scaled_doc = copy.deepcopy(doc)
    for c in scaled_doc["categories"]:
        c["weight"] = c["weight"] * factor
    scaled = published(scaled_doc)
    values = values_for(model, data)
    a, b = card(model, values), card(scaled, values)
    assert (a.score, a.status) == (b.score, b.status)
    assert [c.score for c in a.categories] == [c.score for c in b.categories]


@SLOW
@given(model_docs(), st.data())
def test_an_excluded_missing_indicator_renormalises_the_rest(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    """Scoring without the indicator's data equals scoring a model without that indicator."""
    ci = data.draw(st.integers(0, len(doc["categories"]) - 1))
    category = doc["categories"][ci]
    ii = data.draw(st.integers(0, len(category["indicators"]) - 1))
    category["indicators"][ii]["missing"] = "exclude"
    model = published(doc)
    values = values_for(model, data)
    flat = [
        (c, i) for c, cat in enumerate(doc["categories"]) for i in range(len(cat["indicators"]))
    ]
    k = flat.index((ci, ii))
    values[k] = None
    with_missing = card(model, values)
    assert with_missing.indicators[k].counted is False
    assert with_missing.indicators[k].level == "missing"

    reduced_doc = copy.deepcopy(doc)
    del reduced_doc["categories"][ci]["indicators"][ii]
    if not reduced_doc["categories"][ci]["indicators"]:
        del reduced_doc["categories"][ci]
    if not reduced_doc["categories"]:
        assert with_missing.has_data is False
        return
    reduced = card(published(reduced_doc), values[:k] + values[k + 1 :])
    assert (with_missing.score, with_missing.has_data) == (reduced.score, reduced.has_data)


@SLOW
@given(events(max_size=30), st.integers(1, 200))
def test_with_no_new_events_the_score_reflects_slid_windows(
    evs: list[Event], days_later: int
) -> None:
    """Later as_of: windowed counts only shrink, days_since only grows (decay)."""
    doc = {
        "id": "decay",
        "name": "Decay",
        "categories": [
            {
                "name": "Usage",
                "weight": 1,
                "indicators": [
                    {
                        "name": "Logins",
                        "metric": {"kind": "count", "event": "usage", "window": "30d"},
                        "max_points": 10,
                        "good": 5,
                        "average": 2,
                    },
                    {
                        "name": "Quiet days",
                        "metric": {"kind": "days_since", "event": "usage"},
                        "max_points": 10,
                        "direction": "lower_is_better",
                        "good": 3,
                        "average": 10,
                    },
                ],
            }
        ],
    }
    model = published(doc)
    state = build(evs)
    now = evaluate_values(state, model.model, AS_OF)
    later_as_of = AS_OF + dt.timedelta(days=days_later)
    later = evaluate_values(state, model.model, later_as_of)
    if now[0] is not None:
        assert later[0] is not None
        assert later[0] <= now[0]
    if now[1] is not None:
        assert later[1] == now[1] + days_later
    assert score(state, model, later_as_of).score <= score(state, model, AS_OF).score
    if days_later >= 30 and now[0] is not None:
        assert later[0] == 0


# -- concrete behaviour -------------------------------------------------------------------------

ADOPTION = next(m for m in default_models() if m.model_id == "adoption")


def test_login_decay_moves_status_without_events() -> None:
    evs = [event("acct", "account", {"licenses": 4}, T0)]
    for day in range(60):
        for user in ("u1", "u2", "u3", "u4"):
            at = T0 + dt.timedelta(days=day, hours=9)
            evs.append(
                event(
                    f"{day}-{user}",
                    "usage",
                    {"metric": "login", "user_id": user, "feature": None}
                    if False
                    else {"metric": "login", "user_id": user},
                    at,
                )
            )
            evs.append(
                event(
                    f"{day}-{user}-f",
                    "usage",
                    {"metric": "feature_used", "feature": f"f{day % 6}", "user_id": user},
                    at,
                )
            )
    state = build(evs)
    last = T0 + dt.timedelta(days=59, hours=18)
    fresh = score(state, ADOPTION, last)
    month_later = score(state, ADOPTION, last + dt.timedelta(days=31))
    assert fresh.status == "green"
    assert month_later.score < fresh.score
    assert month_later.status == "red"
    moved = drivers(fresh, month_later)
    assert [d.indicator for d in moved][:1] == ["License utilisation"]
    assert all(d.score_impact < 0 for d in moved)


def test_no_data_gives_the_neutral_amber_score() -> None:
    result = score(new_state("acme"), ADOPTION, AS_OF)
    assert (result.score, result.status, result.has_data) == (50.0, "amber", False)
    assert all(i.level == "missing" for i in result.indicators)
    custom = copy.deepcopy(ADOPTION.model.document())
    custom["bands"] = [
        {"status": "red", "min": 0, "max": 60},
        {"status": "amber", "min": 60, "max": 80},
        {"status": "green", "min": 80, "max": 100},
    ]
    result = score(new_state("acme"), published(custom), AS_OF)
    assert (result.score, result.status) == (70.0, "amber")


def test_missing_policies() -> None:
    doc = {
        "id": "missing",
        "name": "Missing",
        "categories": [
            {
                "name": "C",
                "weight": 1,
                "indicators": [
                    {
                        "name": "x",
                        "metric": {"kind": "licenses"},
                        "max_points": 10,
                        "good": 5,
                        "average": 1,
                        "missing": "average",
                    },
                    {
                        "name": "y",
                        "metric": {"kind": "days_to_renewal"},
                        "max_points": 10,
                        "good": 90,
                        "average": 30,
                        "missing": "poor",
                    },
                ],
            }
        ],
    }
    result = card(published(doc), [None, None])
    assert [(i.level, i.points, i.counted) for i in result.indicators] == [
        ("missing", 5.0, True),
        ("missing", 0.0, True),
    ]
    assert result.score == 25.0
    assert result.has_data


def test_status_uses_the_rounded_score_and_band_edges() -> None:
    doc = {
        "id": "edges",
        "name": "Edges",
        "categories": [
            {
                "name": "C",
                "weight": 1,
                "indicators": [
                    {
                        "name": "a",
                        "metric": {"kind": "licenses"},
                        "max_points": 1,
                        "good": 2,
                        "average": 1,
                        "shares": {"average": 0.4},
                    },
                    {
                        "name": "b",
                        "metric": {"kind": "licenses"},
                        "max_points": 1,
                        "good": 2,
                        "average": 1,
                        "shares": {"average": 0.4},
                    },
                    {
                        "name": "c",
                        "metric": {"kind": "licenses"},
                        "max_points": 1,
                        "good": 2,
                        "average": 1,
                        "shares": {"average": 0.4},
                    },
                ],
            }
        ],
    }
    model = published(doc)
    assert (card(model, [1, 1, 1]).score, card(model, [1, 1, 1]).status) == (40.0, "amber")
    assert (card(model, [0, 0, 0]).score, card(model, [0, 0, 0]).status) == (0.0, "red")
    assert card(model, [5, 5, 5]).status == "green"
    assert card(model, [5, 1, 0]).score == 46.7  # (1 + 0.4 + 0) / 3


def test_metric_values_on_a_concrete_account() -> None:
    day = dt.timedelta(days=1)
    as_of = dt.datetime(2024, 6, 30, 15, tzinfo=dt.UTC)
    evs = [
        event("p", "account", {"licenses": 8, "renewal_date": "2024-08-29"}, as_of - 200 * day),
        event("l1", "usage", {"metric": "login", "user_id": "u1"}, as_of - 1 * day),
        event("l2", "usage", {"metric": "login", "user_id": "u2"}, as_of - 29 * day),
        event(
            "l3", "usage", {"metric": "login", "user_id": "u3"}, as_of - 30 * day
        ),  # previous window
        event("l4", "usage", {"metric": "login", "user_id": "u3"}, as_of - 31 * day),
        event(
            "f1",
            "usage",
            {"metric": "feature_used", "feature": "reports", "user_id": "u1", "quantity": 2.5},
            as_of - 2 * day,
        ),
        event(
            "t1",
            "ticket",
            {"ticket_id": "T1", "status": "opened", "priority": "urgent"},
            as_of - 20 * day,
        ),
        event(
            "t2",
            "ticket",
            {"ticket_id": "T2", "status": "opened", "priority": "low", "csat": 2},
            as_of - 3 * day,
        ),
        event(
            "t3",
            "ticket",
            {"ticket_id": "T2", "status": "resolved", "priority": "low", "csat": 5},
            as_of - 2 * day,
        ),
        event(
            "b1",
            "billing",
            {
                "invoice_id": "I1",
                "status": "issued",
                "amount_cents": 100,
                "currency": "EUR",
                "due_at": (as_of - 1 * day).isoformat(),
            },
            as_of - 40 * day,
        ),
        event(
            "b2",
            "billing",
            {"invoice_id": "I2", "status": "failed", "amount_cents": 50, "currency": "EUR"},
            as_of - 10 * day,
        ),
        event("n1", "feedback", {"survey": "nps", "score": 6}, as_of - 100 * day),
        event("n2", "feedback", {"survey": "nps", "score": 9}, as_of - 50 * day),
    ]
    state = build(evs)
    metrics: list[dict[str, Any]] = [
        {"kind": "count", "event": "usage", "window": "30d", "where": {"metric": "login"}},
        {"kind": "distinct", "event": "usage", "field": "user_id", "window": "30d"},
        {
            "kind": "change",
            "of": {
                "kind": "count",
                "event": "usage",
                "window": "30d",
                "where": {"metric": "login"},
            },
        },
        {
            "kind": "change",
            "of": {
                "kind": "count",
                "event": "usage",
                "window": "30d",
                "where": {"metric": "login"},
            },
            "mode": "absolute",
        },
        {"kind": "sum", "event": "usage", "field": "quantity", "window": "7d"},
        {"kind": "avg", "event": "ticket", "field": "csat", "window": "30d"},
        {"kind": "latest", "event": "ticket", "field": "csat"},
        {"kind": "open_tickets"},
        {"kind": "open_tickets", "priority": "urgent", "min_age": "21d"},
        {"kind": "overdue_invoices"},
        {"kind": "latest", "event": "feedback", "field": "score", "where": {"survey": "nps"}},
        {
            "kind": "latest",
            "event": "feedback",
            "field": "score",
            "where": {"survey": "nps"},
            "max_age": "30d",
        },
        {"kind": "days_since", "event": "feedback"},
        {"kind": "days_to_renewal"},
        {
            "kind": "ratio",
            "numerator": {
                "kind": "distinct",
                "event": "usage",
                "field": "user_id",
                "window": "30d",
            },
            "denominator": {"kind": "licenses"},
            "scale": 100,
        },
        {"kind": "distinct", "event": "usage", "field": "feature", "window": "30d"},
        {"kind": "count", "event": "email", "window": "30d"},
        {"kind": "sentiment", "window": "30d"},
    ]
    doc = {
        "id": "values",
        "name": "Values",
        "categories": [
            {
                "name": "C",
                "weight": 1,
                "indicators": [
                    {"name": f"m{i}", "metric": m, "max_points": 1, "good": 1, "average": 0}
                    for i, m in enumerate(metrics)
                ],
            }
        ],
    }
    values = evaluate_values(state, parse_model(doc), as_of)
    assert values == [
        2.0,  # l1, l2 (days -1 and -29 are in the 30 days ending today)
        2.0,  # u1, u2
        0.0,  # 2 logins vs 2 (l3, l4) before
        0.0,
        3.5,  # l1 (1) + f1 (2.5)
        3.5,  # (2 + 5) / 2
        5.0,
        1.0,  # T1 (T2 resolved)
        None if False else 0.0,  # T1 is 20 days old, not 21
        2.0,  # I1 past due, I2 failed
        9.0,
        None,  # newest NPS is 50 days old
        50.0,
        60.0,
        25.0,  # 2 of 8 seats
        1.0,
        None,  # no email source
        None,  # no text
    ]


def test_drivers_impacts_add_up_to_the_score_change() -> None:
    doc = {
        "id": "drv",
        "name": "Drivers",
        "categories": [
            {
                "name": "A",
                "weight": 3,
                "indicators": [
                    {
                        "name": "a1",
                        "metric": {"kind": "licenses"},
                        "max_points": 10,
                        "good": 10,
                        "average": 5,
                    },
                    {
                        "name": "a2",
                        "metric": {"kind": "licenses"},
                        "max_points": 5,
                        "good": 10,
                        "average": 5,
                    },
                ],
            },
            {
                "name": "B",
                "weight": 1,
                "indicators": [
                    {
                        "name": "b1",
                        "metric": {"kind": "licenses"},
                        "max_points": 4,
                        "good": 10,
                        "average": 5,
                    },
                ],
            },
        ],
    }
    model = published(doc)
    before = card(model, [10, 0, None])
    after = card(model, [5, 10, 0])
    moved = drivers(before, after, limit=10)
    # A stays at 10/15 points; B starts counting with 0 points: B's arrival is the whole drop
    assert [(d.indicator, d.score_impact) for d in moved] == [
        ("a1", -33.3333),  # alone: A 5/15 (ties: the harmful move first)
        ("a2", 33.3333),  # alone: A 15/15
        ("b1", -16.6667),  # alone: B counts at 0 -> (3 x 66.67 + 0) / 4
    ]
    assert (moved[2].old_level, moved[2].new_level) == ("missing", "poor")
    assert after.score - before.score == pytest.approx(-16.7, abs=0.05)
    first = drivers(None, after, limit=1)
    assert first[0].old_level is None
    assert drivers(after, after) == ()


def test_next_rescore_at() -> None:
    as_of = dt.datetime(2024, 6, 30, 15, tzinfo=dt.UTC)
    assert next_rescore_at(new_state("acme"), as_of) is None
    licenses_only = build([event("p", "account", {"licenses": 3}, as_of)])
    assert next_rescore_at(licenses_only, as_of) is None
    renewal = build([event("p", "account", {"renewal_date": "2025-01-01"}, as_of)])
    assert next_rescore_at(renewal, as_of) == dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    due = as_of + dt.timedelta(hours=2)
    invoice = build(
        [
            event(
                "b",
                "billing",
                {
                    "invoice_id": "I",
                    "status": "issued",
                    "amount_cents": 1,
                    "currency": "EUR",
                    "due_at": due.isoformat(),
                },
                as_of,
            )
        ]
    )
    found = next_rescore_at(invoice, as_of)
    assert found is not None
    assert due < found <= due + dt.timedelta(milliseconds=1)
    with pytest.raises(ValueError, match="aware"):
        next_rescore_at(invoice, dt.datetime(2024, 6, 30))


def test_score_requires_an_aware_as_of() -> None:
    with pytest.raises(ValueError, match="aware"):
        score(new_state("acme"), ADOPTION, dt.datetime(2024, 6, 30))


def test_select_model() -> None:
    def pm(
        model_id: str,
        *,
        stages: tuple[str, ...] = (),
        segments: tuple[str, ...] = (),
        priority: int = 0,
        default: bool = False,
        version: int = 1,
    ) -> PublishedModel:
        doc = copy.deepcopy(ADOPTION.model.document())
        doc.update(
            id=model_id,
            priority=priority,
            default=default,
            applies_to={"lifecycle_stages": list(stages), "segments": list(segments)},
        )
        return published(doc, version)

    base = pm("base", default=True)
    onboarding = pm("onb", stages=("onboarding",))
    onb_ent = pm("onb-ent", stages=("onboarding",), segments=("enterprise",))
    ent = pm("ent", segments=("Enterprise",), priority=5)
    models = [base, onboarding, onb_ent, ent]
    assert select_model(models, Profile(lifecycle_stage="onboarding")) is onboarding
    assert (
        select_model(models, Profile(lifecycle_stage="onboarding", segment="enterprise")) is ent
    )  # priority first
    assert (
        select_model(
            [base, onboarding, onb_ent], Profile(lifecycle_stage="onboarding", segment="enterprise")
        )
        is onb_ent
    )
    assert select_model(models, Profile(lifecycle_stage="renewal")) is base
    assert select_model(models, Profile()) is base
    assert select_model([onboarding], Profile()).model_id == "adoption"  # built-in fallback
    assert select_model([], Profile()).model_id == "adoption"
    assert select_model(default_models(), Profile(lifecycle_stage="renewal")).model_id == "renewal"
    assert (
        select_model(default_models(), Profile(lifecycle_stage="Onboarding")).model_id
        == "onboarding"
    )


def test_scoring_leaves_models_equal_and_collectable() -> None:
    import gc
    import weakref

    from healthscore.engine.scoring import _PLANS

    doc = ADOPTION.model.document()
    model = published(doc)
    score(new_state("acme"), model, AS_OF)
    assert model.model == parse_model(doc)
    ref = weakref.ref(model.model)
    before = len(_PLANS)
    del model
    gc.collect()
    assert ref() is None
    assert len(_PLANS) == before - 1
