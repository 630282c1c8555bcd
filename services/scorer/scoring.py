"""The scorer's business logic, free of Kafka and PostgreSQL: one account's stored record plus
one input (an event or a tick) gives the new record and what to publish and persist.

The agent that calls :class:`AccountScorer` only decodes, writes the tables and hands the outputs
to their adapters. Every call takes ``now`` from the caller; nothing here reads a clock.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import AwareDatetime, TypeAdapter

from healthscore.engine import (
    AccountState,
    CategoryResult,
    DriverResult,
    IndicatorResult,
    Profile,
    ScoreCard,
    apply_event,
    drivers,
    new_state,
    next_rescore_at,
    score,
)
from schemas.events import Event
from schemas.messages import (
    SCHEMA_VERSION,
    AccountProfile,
    ScoreCause,
    ScoreChanged,
    Status,
)
from services.scorer.model_registry import ModelRegistry
from services.scorer.records import (
    AccountRecord,
    CardRecord,
    RecordHeader,
    TickCause,
    decode_account,
    encode_account,
)


@dataclass(frozen=True, slots=True)
class Change:
    """A published score change: its ``ScoreChanged`` JSON (exactly what pydantic would emit for
    the message) and the values the PostgreSQL rows need, built straight from the engine's
    results. Validating our own output through pydantic cost more than scoring it; the parsed
    message is still available as :meth:`message`."""

    json: bytes
    account_id: str
    model_id: str
    model_version: int
    old_score: float | None
    new_score: float
    old_status: Status | None
    new_status: Status
    # As ScoreChanged.model_dump(mode="json") gives them: the JSON columns' values.
    categories: list[dict[str, Any]]
    indicators: list[dict[str, Any]]
    drivers: list[dict[str, Any]]
    cause: ScoreCause
    scored_at: dt.datetime
    event_time: dt.datetime | None

    def message(self) -> ScoreChanged:
        return ScoreChanged.model_validate_json(self.json)

    @classmethod
    def from_message(cls, message: ScoreChanged, json: bytes) -> Change:
        return cls(
            json=json,
            account_id=message.account_id,
            model_id=message.model_id,
            model_version=message.model_version,
            old_score=message.old_score,
            new_score=message.new_score,
            old_status=message.old_status,
            new_status=message.new_status,
            categories=[c.model_dump(mode="json") for c in message.categories],
            indicators=[i.model_dump(mode="json") for i in message.indicators],
            drivers=[d.model_dump(mode="json") for d in message.drivers],
            cause=message.cause,
            scored_at=message.scored_at,
            event_time=message.event_time,
        )


@dataclass(frozen=True, slots=True)
class Persist:
    """What PostgreSQL must hold for the account after this input (see PostgresScoreWriter)."""

    account_id: str
    revision: int
    state: bytes
    profile: AccountProfile
    published: Change | None  # None: only the state and profile columns moved

    @property
    def change(self) -> ScoreChanged | None:
        return None if self.published is None else self.published.message()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one input. ``None`` fields mean "nothing to do" for that output."""

    record: bytes | None = None  # new value for the states table
    card: bytes | None = None  # new value for the cards table
    scores: bytes | None = None  # value for health.scores
    status: bytes | None = None  # value for health.status
    persist: Persist | None = None
    published: Change | None = None  # the change published now (metrics)
    duplicate: bool = False
    # Due-index inputs: when the account next needs a time rescore, and its current status.
    next_rescore_epoch: float = math.nan
    current_status: Status | None = None
    known: bool = False  # False: no state exists for the account (an unknown tick's account)

    @property
    def change(self) -> ScoreChanged | None:
        """The change published now, as the wire message (parsed on demand)."""
        return None if self.published is None else self.published.message()


NOTHING = Outcome()


def profile_message(profile: Profile) -> AccountProfile:
    return AccountProfile(
        name=profile.name,
        lifecycle_stage=profile.lifecycle_stage,
        segment=profile.segment,
        owner=profile.owner,
        licenses=profile.licenses,
        arr_cents=profile.arr_cents,
        renewal_date=profile.renewal_date.isoformat() if profile.renewal_date else None,
        parent_account_id=profile.parent_account_id,
    )


def _card_from_message(message: ScoreChanged) -> ScoreCard:
    """The engine's view of a previously published score (the "previous" side of drivers)."""
    return ScoreCard(
        account_id=message.account_id,
        model_id=message.model_id,
        model_version=message.model_version,
        score=message.new_score,
        status=message.new_status,
        categories=tuple(CategoryResult(**c.model_dump()) for c in message.categories),
        indicators=tuple(IndicatorResult(**i.model_dump()) for i in message.indicators),
        as_of=message.scored_at,
    )


# Wire encoding of ScoreChanged without pydantic. Every number pydantic would coerce to float is
# passed through float() (an engine value may be an int: round(5, 4) == 5, and "5" != "5.0"), and
# dict keys follow the models' field order, so the bytes equal ScoreChanged.model_dump_json().
_DATETIME = TypeAdapter(AwareDatetime)


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _category_doc(c: CategoryResult) -> dict[str, Any]:
    return {
        "name": c.name,
        "weight": float(c.weight),
        "score": _optional_float(c.score),
        "earned_points": float(c.earned_points),
        "possible_points": float(c.possible_points),
    }


def _indicator_doc(i: IndicatorResult) -> dict[str, Any]:
    return {
        "category": i.category,
        "name": i.name,
        "metric": i.metric,
        "value": _optional_float(i.value),
        "level": i.level,
        "points": float(i.points),
        "max_points": float(i.max_points),
        "counted": i.counted,
    }


def _driver_doc(d: DriverResult) -> dict[str, Any]:
    return {
        "category": d.category,
        "indicator": d.indicator,
        "old_value": _optional_float(d.old_value),
        "new_value": _optional_float(d.new_value),
        "old_level": d.old_level,
        "new_level": d.new_level,
        "points_delta": float(d.points_delta),
        "score_impact": float(d.score_impact),
    }


def _moment_json(moment: dt.datetime | None) -> Any:
    """A datetime as pydantic's AwareDatetime serialises it (orjson writes the same text, except
    for UTC offsets with seconds, which go through pydantic)."""
    if moment is None:
        return None
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("ScoreChanged times must be timezone-aware")
    if offset.seconds % 60 or offset.microseconds:
        return orjson.Fragment(_DATETIME.dump_json(moment))
    return moment


class AccountScorer:
    """Applies events and ticks to one account's stored record.

    ``record`` is the account's current ``states`` table value (None for a new account) and
    ``card`` its ``cards`` value (None before its first published score).

    Decoding a state costs more than scoring it, so the states of the ``cache_size`` most
    recently used accounts stay decoded, each tagged with the revision it belongs to: a table
    value of another revision (written by another worker, recovered from the changelog) is
    decoded again. With the state stays the account's ``cards`` value when this worker wrote it,
    and the engine's score card it was built from: while the table still holds that value, the
    next change takes its previous card from there instead of parsing the card's JSON (the card
    parsed back differs only in holding ints as floats, e.g. a weight of 2 as 2.0, which the
    drivers' arithmetic and comparisons do not tell apart, and in fields drivers do not read).
    :meth:`forget_all` drops the cache (after a rebalance).
    """

    def __init__(self, registry: ModelRegistry, *, cache_size: int = 5000) -> None:
        self._registry = registry
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._profiles: dict[Profile, tuple[AccountProfile, dict[str, Any]]] = {}

    def forget_all(self) -> None:
        self._cache.clear()

    def _state(self, account_id: str, stored: AccountRecord) -> tuple[AccountState, _Cached | None]:
        cached = self._cache.get(account_id)
        if cached is not None and cached.revision == stored.header.revision:
            self._cache.move_to_end(account_id)
            return cached.state, cached
        return AccountState.from_bytes(stored.state), None

    def _remember(
        self,
        account_id: str,
        revision: int,
        state: AccountState,
        card: bytes | None,
        previous: ScoreCard | None,
    ) -> None:
        if self._cache_size <= 0:
            return
        self._cache[account_id] = _Cached(revision, state, card, previous)
        self._cache.move_to_end(account_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _profile(self, profile: Profile) -> tuple[AccountProfile, dict[str, Any]]:
        found = self._profiles.get(profile)
        if found is None:
            if len(self._profiles) >= _PROFILE_CACHE_SIZE:
                self._profiles.clear()
            message = profile_message(profile)
            found = self._profiles[profile] = (message, message.model_dump(mode="json"))
        return found

    def on_event(
        self, record: bytes | None, card: bytes | None, event: Event, now: dt.datetime
    ) -> Outcome:
        account_id = event.account_id
        stored = None if record is None else decode_account(record)
        cached: _Cached | None = None
        if stored is None:
            state = new_state(account_id)
        else:
            state, cached = self._state(account_id, stored)
        # apply_event mutates the (possibly cached) state: drop it from the cache until the
        # outcome is complete, so a failure half-way never leaves a state the table lacks.
        self._cache.pop(account_id, None)
        if not apply_event(state, event):
            if stored is None or record is None or card is None:
                return NOTHING  # an event too old for the retention window of a new account
            # not mutated
            self._remember(
                account_id,
                stored.header.revision,
                state,
                cached.card if cached else None,
                cached.previous if cached else None,
            )
            return self._republish(event.event_id, stored, record, state, card)
        header = None if stored is None else stored.header
        outcome, scored = self._rescore(
            header, state, card, cached, now, cause="event", event=event, state_changed=True
        )
        if outcome.persist is not None:
            self._remember_outcome(account_id, outcome, scored, state, card, cached)
        return outcome

    def on_tick(
        self,
        account_id: str,
        record: bytes | None,
        card: bytes | None,
        cause: TickCause,
        now: dt.datetime,
    ) -> Outcome:
        if record is None:
            return NOTHING  # the account's state is gone or never existed: nothing to rescore
        stored = decode_account(record)
        state, cached = self._state(account_id, stored)
        tick_cause: ScoreCause = cause
        outcome, scored = self._rescore(
            stored.header,
            state,
            card,
            cached,
            now,
            cause=tick_cause,
            event=None,
            state_changed=False,
        )
        if outcome.persist is not None:
            self._remember_outcome(account_id, outcome, scored, state, card, cached)
        else:
            self._remember(
                account_id,
                stored.header.revision,
                state,
                cached.card if cached else None,
                cached.previous if cached else None,
            )
        return outcome

    def _remember_outcome(
        self,
        account_id: str,
        outcome: Outcome,
        scored: ScoreCard,
        state: AccountState,
        card: bytes | None,
        cached: _Cached | None,
    ) -> None:
        assert outcome.persist is not None
        previous: ScoreCard | None
        if outcome.card is not None:
            new_card, previous = outcome.card, scored
        elif cached is not None and cached.card is not None and cached.card == card:
            new_card, previous = cached.card, cached.previous  # the cards value did not move
        else:
            new_card, previous = None, None
        self._remember(account_id, outcome.persist.revision, state, new_card, previous)

    def _previous(self, card_value: bytes | None, cached: _Cached | None) -> ScoreCard | None:
        """The engine's view of the account's last published score (the ``cards`` value)."""
        if card_value is None:
            return None
        if cached is not None and cached.previous is not None and cached.card == card_value:
            return cached.previous
        return _card_from_message(
            ScoreChanged.model_validate_json(CardRecord.from_bytes(card_value).score_changed_json)
        )

    def _rescore(
        self,
        header: RecordHeader | None,
        state: AccountState,
        card_value: bytes | None,
        cached: _Cached | None,
        now: dt.datetime,
        *,
        cause: ScoreCause,
        event: Event | None,
        state_changed: bool,
    ) -> tuple[Outcome, ScoreCard]:
        """The outcome, and the engine's card it published (if it did)."""
        model = self._registry.select(state.profile)
        card = score(state, model, now)
        due = next_rescore_at(state, now)
        due_epoch = math.nan if due is None else due.timestamp()
        fingerprint = self._registry.fingerprint
        changed = (
            header is None
            or card.score != header.last_score
            or card.status != header.last_status
            or card.model_id != header.model_id
            or card.model_version != header.model_version
        )
        fingerprint_moved = header is None or header.models_fingerprint != fingerprint
        if not (changed or state_changed or fingerprint_moved):
            # A tick that moved nothing: only the due time may have moved (kept in memory).
            return Outcome(
                next_rescore_epoch=due_epoch,
                current_status=card.status,
                known=True,
            ), card
        revision = 1 if header is None else header.revision + 1
        state_bytes = state.to_bytes()
        profile, profile_doc = self._profile(state.profile)
        change: Change | None = None
        new_card: bytes | None = None
        if changed:
            previous = self._previous(card_value, cached)
            moved: tuple[DriverResult, ...] = ()
            if previous is None or model.model_id == previous.model_id:
                # Drivers compare indicators of one model; across models nothing "moved".
                moved = drivers(previous, card)
            change = _change(
                card,
                profile_doc,
                old_score=None if header is None else header.last_score,
                old_status=None if header is None else header.last_status,
                moved=moved,
                cause=cause,
                scored_at=now,
                event_time=event.occurred_at if event is not None else None,
            )
            new_card = CardRecord(
                event.event_id if event is not None else None, change.json
            ).to_bytes()
        new_header = RecordHeader(
            revision=revision,
            next_rescore_epoch=due_epoch,
            last_score=card.score,
            last_status=card.status,
            model_id=card.model_id,
            model_version=card.model_version,
            models_fingerprint=fingerprint,
        )
        outcome = Outcome(
            record=encode_account(new_header, state_bytes),
            card=new_card,
            scores=change.json if change is not None else None,
            status=change.json if change is not None else None,
            persist=Persist(card.account_id, revision, state_bytes, profile, change),
            published=change,
            next_rescore_epoch=due_epoch,
            current_status=card.status,
            known=True,
        )
        return outcome, card

    def _republish(
        self,
        event_id: str,
        stored: AccountRecord,
        record: bytes,
        state: AccountState,
        card: bytes,
    ) -> Outcome:
        """A duplicate: the state already counts this event. After a crash the outputs of its
        processing may be lost although the state survived (in the changelog, or only in the
        local RocksDB store, which faust writes before the changelog), so write everything
        again, unchanged: the table records (to the changelog), health.status and PostgreSQL are
        idempotent; health.scores gets the change again only when this very event caused the
        latest change (the same record, same scored_at)."""
        last = CardRecord.from_bytes(card)
        message = ScoreChanged.model_validate_json(last.score_changed_json)
        header = stored.header
        profile, _ = self._profile(state.profile)
        return Outcome(
            record=record,
            card=card,
            scores=last.score_changed_json if last.cause_event_id == event_id else None,
            status=last.score_changed_json,
            persist=Persist(
                message.account_id,
                header.revision,
                stored.state,
                profile,
                Change.from_message(message, last.score_changed_json),
            ),
            duplicate=True,
            next_rescore_epoch=header.next_rescore_epoch,
            current_status=header.last_status,
            known=True,
        )


_PROFILE_CACHE_SIZE = 10_000


@dataclass(slots=True)
class _Cached:
    """A decoded state, the revision it belongs to, and the ``cards`` value with the engine's
    card it was built from, when this worker wrote it (None: not known here)."""

    revision: int
    state: AccountState
    card: bytes | None
    previous: ScoreCard | None


def _change(
    card: ScoreCard,
    profile_doc: dict[str, Any],
    *,
    old_score: float | None,
    old_status: Status | None,
    moved: tuple[DriverResult, ...],
    cause: ScoreCause,
    scored_at: dt.datetime,
    event_time: dt.datetime | None,
) -> Change:
    categories = [_category_doc(c) for c in card.categories]
    indicators = [_indicator_doc(i) for i in card.indicators]
    driver_docs = [_driver_doc(d) for d in moved]
    new_score = float(card.score)
    old = _optional_float(old_score)
    document = {
        "schema_version": SCHEMA_VERSION,
        "account_id": card.account_id,
        "profile": profile_doc,
        "model_id": card.model_id,
        "model_version": card.model_version,
        "old_score": old,
        "new_score": new_score,
        "old_status": old_status,
        "new_status": card.status,
        "categories": categories,
        "indicators": indicators,
        "drivers": driver_docs,
        "cause": cause,
        "scored_at": _moment_json(scored_at),
        "event_time": _moment_json(event_time),
    }
    return Change(
        json=orjson.dumps(document, option=orjson.OPT_UTC_Z),
        account_id=card.account_id,
        model_id=card.model_id,
        model_version=card.model_version,
        old_score=old,
        new_score=new_score,
        old_status=old_status,
        new_status=card.status,
        categories=categories,
        indicators=indicators,
        drivers=driver_docs,
        cause=cause,
        scored_at=scored_at,
        event_time=event_time,
    )
