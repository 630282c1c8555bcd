"""AccountScorer without Kafka: events and ticks on stored records give the right outputs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from healthscore.engine import apply_event, default_models, new_state, score, select_model
from schemas.events import Event, event_from_obj
from schemas.messages import ModelPublished, ScoreChanged
from services.scorer.model_registry import ModelRegistry
from services.scorer.records import CardRecord, decode_account
from services.scorer.scoring import AccountScorer, Outcome

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def login(n: int, account: str = "acct-1", days_ago: int = 1, user: str = "u1") -> Event:
    return event_from_obj(
        {
            "event_id": f"ev-{account}-{n}",
            "account_id": account,
            "type": "usage",
            "occurred_at": (NOW - days_ago * DAY).isoformat(),
            "payload": {"metric": "login", "user_id": user},
        }
    )


def profile(stage: str, account: str = "acct-1") -> Event:
    return event_from_obj(
        {
            "event_id": f"profile-{account}-{stage}",
            "account_id": account,
            "type": "account",
            "occurred_at": (NOW - 30 * DAY).isoformat(),
            "payload": {"lifecycle_stage": stage, "licenses": 2, "renewal_date": "2024-09-01"},
        }
    )


class Account:
    """The table values of one account, updated the way the agent does."""

    def __init__(self, scorer: AccountScorer, account_id: str = "acct-1") -> None:
        self.scorer = scorer
        self.account_id = account_id
        self.record: bytes | None = None
        self.card: bytes | None = None

    def keep(self, outcome: Outcome) -> Outcome:
        self.record = outcome.record or self.record
        self.card = outcome.card or self.card
        return outcome

    def event(self, event: Event, now: dt.datetime = NOW) -> Outcome:
        return self.keep(self.scorer.on_event(self.record, self.card, event, now))

    def tick(self, now: dt.datetime, cause: Any = "time") -> Outcome:
        return self.keep(self.scorer.on_tick(self.account_id, self.record, self.card, cause, now))


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture
def account(registry: ModelRegistry) -> Account:
    return Account(AccountScorer(registry))


def test_first_event_publishes_the_first_score(account: Account) -> None:
    outcome = account.event(login(1))
    change = outcome.change
    assert change is not None
    assert change.old_score is None
    assert change.old_status is None
    assert change.cause == "event"
    assert change.event_time == NOW - DAY
    assert change.scored_at == NOW
    assert change.model_version == 0
    assert outcome.scores == outcome.status == change.model_dump_json().encode()
    assert outcome.persist is not None
    assert outcome.persist.change == change
    assert outcome.persist.revision == 1


def test_score_matches_the_engine_and_record_holds_state(account: Account) -> None:
    events = [profile("adoption"), login(1), login(2, user="u2"), login(3, days_ago=5)]
    for event in events:
        outcome = account.event(event)
    state = new_state("acct-1")
    for event in events:
        apply_event(state, event)
    card = score(state, select_model(default_models(), state.profile), NOW)
    stored = decode_account(account.record or b"")
    assert stored.header.last_score == card.score
    assert stored.header.last_status == card.status
    assert stored.header.revision == len(events)
    assert outcome.persist is not None
    assert outcome.persist.profile.lifecycle_stage == "adoption"
    assert outcome.persist.profile.renewal_date == "2024-09-01"


def test_an_unchanged_score_writes_state_but_publishes_nothing(account: Account) -> None:
    account.event(login(1))
    outcome = account.event(login(2))  # same day, same user: the score does not move
    assert outcome.change is None
    assert outcome.scores is None
    assert outcome.status is None
    assert outcome.record is not None  # the state counts the event
    assert outcome.card is None
    assert outcome.persist is not None
    assert outcome.persist.change is None


def test_changes_chain_old_to_new_with_drivers(account: Account) -> None:
    first = account.event(login(1, days_ago=20)).change
    assert first is not None
    second = account.event(login(2, days_ago=0)).change
    assert second is not None
    assert second.old_score == first.new_score
    assert second.old_status == first.new_status
    assert second.drivers
    assert CardRecord.from_bytes(account.card or b"").cause_event_id == "ev-acct-1-2"


def test_a_duplicate_changes_nothing_and_republishes_idempotently(account: Account) -> None:
    old, recent = login(1, days_ago=20), login(2, days_ago=0)
    account.event(old)
    latest = account.event(recent)
    assert latest.change is not None
    before = account.record
    again = account.event(recent)
    assert again.duplicate
    assert again.change is None
    assert again.record == before  # re-logged unchanged
    # This event caused the latest change: the same health.scores record, byte for byte.
    assert again.scores == latest.scores
    assert again.status == latest.status
    assert again.persist is not None
    assert again.persist.revision == 2
    older = account.event(old)
    assert older.duplicate
    assert older.scores is None  # the latest change was caused by another event
    assert older.status == latest.status
    assert account.record == before


def test_a_tick_decays_a_quiet_account(account: Account) -> None:
    account.event(login(1))
    header = decode_account(account.record or b"").header
    assert header.next_rescore_at == dt.datetime(2024, 6, 2, tzinfo=dt.UTC)
    quiet = account.tick(NOW + 60 * DAY)
    change = quiet.change
    assert change is not None
    assert change.cause == "time"
    assert change.event_time is None
    assert change.new_score < (change.old_score or 0)
    assert quiet.persist is not None
    assert quiet.persist.revision == 2


def test_a_tick_that_moves_nothing_writes_nothing(account: Account) -> None:
    account.event(login(1))
    outcome = account.tick(NOW + dt.timedelta(hours=1))
    assert outcome.record is None
    assert outcome.change is None
    assert outcome.persist is None
    assert outcome.known


def test_a_tick_for_an_unknown_account_is_ignored(account: Account) -> None:
    outcome = account.tick(NOW)
    assert not outcome.known
    assert outcome.record is None


def test_a_new_model_version_rescores_with_cause_model(
    account: Account, registry: ModelRegistry
) -> None:
    account.event(login(1))
    adoption = next(m for m in default_models() if m.model_id == "adoption")
    document = adoption.model.model_dump(mode="json", exclude_none=True)
    document["bands"] = [
        {"status": "red", "min": 0, "max": 99},
        {"status": "amber", "min": 99, "max": 99.5},
        {"status": "green", "min": 99.5, "max": 100},
    ]
    old_fingerprint = registry.fingerprint
    assert registry.apply(
        ModelPublished(model_id="adoption", version=3, document=document, published_at=NOW)
    )
    assert registry.fingerprint != old_fingerprint
    outcome = account.tick(NOW, cause="model")
    change = outcome.change
    assert change is not None
    assert change.cause == "model"
    assert change.model_version == 3
    assert change.new_status == "red"
    assert decode_account(account.record or b"").header.models_fingerprint == registry.fingerprint


def test_published_json_is_a_valid_score_changed(account: Account) -> None:
    outcome = account.event(login(1))
    message = ScoreChanged.model_validate_json(outcome.scores or b"")
    assert message.account_id == "acct-1"
    assert message.categories
    assert message.indicators


def test_the_decoded_state_cache_never_changes_an_outcome() -> None:
    cached = AccountScorer(ModelRegistry(), cache_size=2)
    uncached = AccountScorer(ModelRegistry(), cache_size=0)
    accounts = {name: (Account(cached, name), Account(uncached, name)) for name in ("a", "b", "c")}
    sequence = [(name, n) for n in range(12) for name in ("a", "b", "c")]
    for step, (name, n) in enumerate(sequence):
        with_cache, without = accounts[name]
        event = login(n % 9, account=name, days_ago=n % 5, user=f"u{n % 4}")  # repeats ids
        assert with_cache.event(event) == without.event(event)
        if step % 7 == 0:
            later = NOW + (step % 3) * DAY
            assert with_cache.tick(later) == without.tick(later)
    for with_cache, without in accounts.values():
        assert with_cache.record == without.record


def test_published_json_is_exactly_what_pydantic_emits(registry: ModelRegistry) -> None:
    """The change JSON is built without pydantic: it must be byte for byte the message's own
    serialisation, for every kind of change (first, event, decay, drivers, profile, offsets)."""
    scorer = AccountScorer(registry)
    account = Account(scorer)
    events = [
        profile("adoption"),
        login(1, days_ago=20),
        login(2, days_ago=3, user="u2"),
        login(3, days_ago=0, user="u3"),
        event_from_obj(
            {
                "event_id": "ticket-1",
                "account_id": "acct-1",
                "type": "ticket",
                "occurred_at": "2024-05-30T10:00:00.250+02:00",
                "payload": {
                    "ticket_id": "t1",
                    "status": "opened",
                    "priority": "urgent",
                    "text": "Broken again",
                },
            }
        ),
    ]
    outcomes = [account.event(event) for event in events]
    outcomes.append(account.tick(NOW + 45 * DAY))
    published = [o.scores for o in outcomes if o.scores is not None]
    assert len(published) >= 4
    for value in published:
        message = ScoreChanged.model_validate_json(value)
        assert message.model_dump_json().encode() == value
    for outcome in outcomes:
        if outcome.persist is not None and outcome.persist.published is not None:
            change = outcome.persist.change
            assert change is not None
            assert outcome.persist.published.categories == [
                c.model_dump(mode="json") for c in change.categories
            ]
            assert outcome.persist.published.indicators == [
                i.model_dump(mode="json") for i in change.indicators
            ]
            assert outcome.persist.published.drivers == [
                d.model_dump(mode="json") for d in change.drivers
            ]
