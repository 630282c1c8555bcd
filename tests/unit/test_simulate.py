"""The simulator's pure part: determinism, valid events, and each persona's story."""

from __future__ import annotations

import collections
import datetime as dt

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from healthscore.simulate.personas import PERSONAS
from healthscore.simulate.population import build_population, persona_sequence
from healthscore.simulate.traffic import SimEvent, Timeline, TrafficGenerator
from schemas.events import event_from_obj

PIVOT = dt.datetime(2025, 3, 3, 15, 27, 11, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _generator(seed: int = 7, count: int = 12, history_days: int = 35) -> TrafficGenerator:
    return TrafficGenerator.create(count, seed, Timeline.ending_at(PIVOT, history_days))


def _stream(generator: TrafficGenerator, until: dt.datetime) -> list[SimEvent]:
    return generator.events_between(generator.timeline.start, until)


def test_same_seed_gives_the_same_event_sequence() -> None:
    end = PIVOT + 20 * DAY
    first = _stream(_generator(seed=7), end)
    second = _stream(_generator(seed=7), end)
    assert len(first) > 1_000
    assert [e.body for e in first] == [e.body for e in second]


def test_another_seed_gives_another_sequence() -> None:
    end = PIVOT + 5 * DAY
    assert [e.body for e in _stream(_generator(seed=7), end)] != [
        e.body for e in _stream(_generator(seed=8), end)
    ]


def test_the_stream_does_not_depend_on_how_time_is_sliced() -> None:
    generator = _generator()
    end = PIVOT + 10 * DAY
    whole = _stream(_generator(), end)
    sliced: list[SimEvent] = []
    t = generator.timeline.start
    steps = [dt.timedelta(minutes=7), dt.timedelta(hours=5), dt.timedelta(days=2)]
    i = 0
    while t < end:
        nxt = min(end, t + steps[i % len(steps)])
        sliced += generator.events_between(t, nxt)
        t, i = nxt, i + 1
    assert [e.event_id for e in sliced] == [e.event_id for e in whole]


def test_events_are_valid_unique_sorted_and_inside_the_interval() -> None:
    generator = _generator(count=15)
    t0, t1 = generator.timeline.start, PIVOT + 30 * DAY
    events = generator.events_between(t0, t1)
    ids = [e.event_id for e in events]
    assert len(set(ids)) == len(ids)
    assert events == sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    for event in events:
        parsed = event_from_obj(event.body)
        assert parsed.occurred_at == event.occurred_at
        assert t0 <= event.occurred_at < t1
    assert {e.body["type"] for e in events} == {
        "usage",
        "ticket",
        "billing",
        "email",
        "feedback",
        "account",
    }


def test_every_persona_appears_in_a_population_of_five() -> None:
    assert sorted(persona_sequence(5)) == sorted(PERSONAS)
    counts = collections.Counter(persona_sequence(60))
    assert counts["healthy"] > counts["churning"] > 0
    accounts = build_population(60, seed=3, history_days=35)
    assert len({a.account_id for a in accounts}) == 60
    assert build_population(60, seed=3, history_days=35) == accounts


def test_every_account_sends_its_profile_first() -> None:
    generator = _generator()
    first: dict[str, SimEvent] = {}
    for event in _stream(generator, PIVOT + 2 * DAY):
        first.setdefault(event.body["account_id"], event)
    assert set(first) == {a.account_id for a in generator.accounts}
    for account in generator.accounts:
        profile = first[account.account_id].body
        assert profile["type"] == "account"
        assert profile["payload"]["lifecycle_stage"] == account.lifecycle_stage


# -- each persona's story ------------------------------------------------------------------


def _by_persona(
    generator: TrafficGenerator, t0: dt.datetime, t1: dt.datetime
) -> dict[str, list[SimEvent]]:
    personas = {a.account_id: a.persona for a in generator.accounts}
    out: dict[str, list[SimEvent]] = collections.defaultdict(list)
    for event in generator.events_between(t0, t1):
        out[personas[event.body["account_id"]]].append(event)
    return out


def _logins_per_account_day(events: list[SimEvent], accounts: int, days: int) -> float:
    logins = [e for e in events if e.body["payload"].get("metric") == "login"]
    return len(logins) / accounts / days


Story = tuple[TrafficGenerator, dict[str, list[SimEvent]], dict[str, list[SimEvent]]]


@pytest.fixture(scope="module")
def story() -> Story:
    generator = _generator(count=24)
    before = _by_persona(generator, PIVOT - 14 * DAY, PIVOT)
    after = _by_persona(generator, PIVOT + 7 * DAY, PIVOT + 21 * DAY)
    return generator, before, after


def _count(generator: TrafficGenerator, persona: str) -> int:
    return sum(1 for a in generator.accounts if a.persona == persona)


def test_churning_usage_collapses_and_trouble_piles_up(story: Story) -> None:
    generator, before, after = story
    n = _count(generator, "churning")
    assert _logins_per_account_day(after["churning"], n, 14) < 0.1 * _logins_per_account_day(
        before["churning"], n, 14
    )
    opened = [e for e in after["churning"] if e.body["payload"].get("status") == "opened"]
    resolved = [e for e in after["churning"] if e.body["payload"].get("status") == "resolved"]
    assert len(opened) >= 5 * n
    assert not resolved
    assert (
        sum(e.body["payload"]["priority"] in ("high", "urgent") for e in opened) > len(opened) / 2
    )
    failed = [e for e in after["churning"] if e.body["payload"].get("status") == "failed"]
    assert failed
    nps = [e.body["payload"]["score"] for e in after["churning"] if e.body["type"] == "feedback"]
    assert nps
    assert max(nps) <= 3


def test_texts_carry_the_persona_sentiment(story: Story) -> None:
    _, _, after = story
    analyzer = SentimentIntensityAnalyzer()

    def mean_sentiment(events: list[SimEvent]) -> float:
        texts = [e.body["payload"]["text"] for e in events if "text" in e.body["payload"]]
        assert texts
        return float(sum(analyzer.polarity_scores(t)["compound"] for t in texts)) / len(texts)

    emails = {p: [e for e in after[p] if e.body["type"] == "email"] for p in after}
    assert mean_sentiment(emails["churning"]) < -0.3
    assert mean_sentiment(emails["healthy"]) > 0.3
    assert mean_sentiment(emails["expanding"]) > 0.3


def test_healthy_accounts_stay_steady(story: Story) -> None:
    generator, before, after = story
    n = _count(generator, "healthy")
    rate_before = _logins_per_account_day(before["healthy"], n, 14)
    rate_after = _logins_per_account_day(after["healthy"], n, 14)
    assert rate_after == pytest.approx(rate_before, rel=0.2)
    assert not [e for e in after["healthy"] if e.body["payload"].get("status") == "failed"]


def test_declining_accounts_slide_slowly(story: Story) -> None:
    generator, before, _ = story
    n = _count(generator, "declining")
    early = _by_persona(generator, PIVOT, PIVOT + 7 * DAY)["declining"]
    late = _by_persona(generator, PIVOT + 21 * DAY, PIVOT + 28 * DAY)["declining"]
    rates = [
        _logins_per_account_day(before["declining"], n, 14),
        _logins_per_account_day(early, n, 7),
        _logins_per_account_day(late, n, 7),
    ]
    assert rates[0] > rates[1] > rates[2] > 0
    assert rates[2] < 0.5 * rates[0]


def test_expanding_accounts_use_more_seats_than_they_bought(story: Story) -> None:
    generator, _, after = story
    for account in (a for a in generator.accounts if a.persona == "expanding"):
        users = {
            e.body["payload"]["user_id"]
            for e in after["expanding"]
            if e.body["account_id"] == account.account_id
            and e.body["payload"].get("metric") == "login"
        }
        assert len(users) > account.licenses


def test_stalled_onboarding_starts_then_goes_silent(story: Story) -> None:
    generator, before, after = story
    accounts = [a for a in generator.accounts if a.persona == "onboarding_stalled"]
    assert all(a.lifecycle_stage == "onboarding" for a in accounts)
    assert _logins_per_account_day(before["onboarding_stalled"], len(accounts), 14) > 0.5
    usage_after = [e for e in after["onboarding_stalled"] if e.body["type"] == "usage"]
    assert usage_after == []


def test_the_history_does_not_depend_on_when_the_story_begins() -> None:
    """The demo sends the history first and begins the stories once alerts are watching."""
    waiting = TrafficGenerator.create(12, 7, Timeline.ending_at(PIVOT, 35, story=False))
    begun = _generator(seed=7, count=12)
    assert waiting.timeline.pivot is None
    until = PIVOT - 5 * DAY
    history = _stream(waiting, until)
    assert [e.body for e in history] == [e.body for e in _stream(begun, until)]

    waiting.begin_story(PIVOT)
    assert [e.body for e in _stream(waiting, PIVOT + 9 * DAY)] == [
        e.body for e in _stream(begun, PIVOT + 9 * DAY)
    ]
