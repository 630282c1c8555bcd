"""The personas move the default models' indicators the way each persona implies: the
simulated events are applied to the pure engine and scored with the repository's models."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from healthscore.engine import (
    AccountState,
    ScoreCard,
    apply_event,
    default_models,
    new_state,
    score,
    select_model,
)
from healthscore.simulate.traffic import Timeline, TrafficGenerator
from schemas.events import event_from_obj

ANCHOR = dt.datetime(2025, 3, 3, 15, 27, tzinfo=dt.UTC)
PIVOT = ANCHOR + dt.timedelta(hours=6)
DAY = dt.timedelta(days=1)
CHECKPOINTS = (ANCHOR, *(PIVOT + d * DAY for d in range(0, 50, 5)))

Cards = dict[str, list[ScoreCard]]


@pytest.fixture(scope="module")
def scored() -> tuple[TrafficGenerator, Cards]:
    """Every account scored at each checkpoint, as the demo runs it: history, then stories."""
    generator = TrafficGenerator.create(30, 1, Timeline.ending_at(ANCHOR, 35, story=False))
    models = default_models()
    states: dict[str, AccountState] = {
        a.account_id: new_state(a.account_id) for a in generator.accounts
    }
    cards: Cards = collections.defaultdict(list)
    t = generator.timeline.start
    for checkpoint in CHECKPOINTS:
        if checkpoint > ANCHOR and generator.timeline.pivot is None:
            generator.begin_story(PIVOT)
        for event in generator.events_between(t, checkpoint):
            apply_event(states[event.body["account_id"]], event_from_obj(event.body))
        t = checkpoint
        for account_id, state in states.items():
            cards[account_id].append(score(state, select_model(models, state.profile), checkpoint))
    return generator, cards


def _of(generator: TrafficGenerator, cards: Cards, persona: str) -> list[list[ScoreCard]]:
    found = [cards[a.account_id] for a in generator.accounts if a.persona == persona]
    assert found
    return found


def _indicator(card: ScoreCard, name: str) -> tuple[float | None, str]:
    found = next(i for i in card.indicators if i.name == name)
    return found.value, found.level


def test_healthy_and_expanding_accounts_stay_green(scored: tuple[TrafficGenerator, Cards]) -> None:
    generator, cards = scored
    for persona in ("healthy", "expanding"):
        for history in _of(generator, cards, persona):
            assert {c.status for c in history} == {"green"}, persona


def test_expanding_accounts_use_more_seats_than_licensed(
    scored: tuple[TrafficGenerator, Cards],
) -> None:
    generator, cards = scored
    for history in _of(generator, cards, "expanding"):
        utilisation, level = _indicator(history[-1], "License utilisation")
        assert utilisation is not None
        assert utilisation > 110
        assert level == "good"


def test_churning_accounts_start_green_and_end_red(scored: tuple[TrafficGenerator, Cards]) -> None:
    generator, cards = scored
    for history in _of(generator, cards, "churning"):
        assert history[0].status == "green"
        assert history[-1].status == "red"
        last = history[-1]
        for name in ("Open high-priority tickets", "Failed payments", "Overdue invoices"):
            assert _indicator(last, name)[1] == "poor", name
        assert _indicator(last, "Sentiment")[1] == "poor"
        assert _indicator(last, "Latest NPS")[1] == "poor"


def test_declining_accounts_slide_from_green_to_amber(
    scored: tuple[TrafficGenerator, Cards],
) -> None:
    generator, cards = scored
    for history in _of(generator, cards, "declining"):
        assert history[0].status == "green"
        assert history[-1].status == "amber"
        assert history[-1].score < history[0].score - 20
        assert _indicator(history[-1], "Usage momentum")[1] == "poor"


def test_stalled_onboarding_decays_without_events(scored: tuple[TrafficGenerator, Cards]) -> None:
    generator, cards = scored
    for history in _of(generator, cards, "onboarding_stalled"):
        assert history[0].model_id == "onboarding"
        assert history[0].status == "green"
        assert history[-1].status in ("amber", "red")
        assert _indicator(history[-1], "Activated seats")[1] == "poor"
        assert _indicator(history[-1], "Days since last login")[1] == "poor"
