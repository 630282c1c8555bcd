"""The scorer's business logic, free of Kafka and PostgreSQL: one account's stored record plus
one input (an event or a tick) gives the new record and what to publish and persist.

The agent that calls :class:`AccountScorer` only decodes, writes the tables and hands the outputs
to their adapters. Every call takes ``now`` from the caller; nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import OrderedDict
from dataclasses import dataclass

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
    AccountProfile,
    CategoryScore,
    Driver,
    IndicatorScore,
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
class Persist:
    """What PostgreSQL must hold for the account after this input (see PostgresScoreWriter)."""

    account_id: str
    revision: int
    state: bytes
    profile: AccountProfile
    change: ScoreChanged | None  # None: only the state and profile columns moved


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one input. ``None`` fields mean "nothing to do" for that output."""

    record: bytes | None = None  # new value for the states table
    card: bytes | None = None  # new value for the cards table
    scores: bytes | None = None  # value for health.scores
    status: bytes | None = None  # value for health.status
    persist: Persist | None = None
    change: ScoreChanged | None = None  # the change published now (metrics)
    duplicate: bool = False
    # Due-index inputs: when the account next needs a time rescore, and its current status.
    next_rescore_epoch: float = math.nan
    current_status: Status | None = None
    known: bool = False  # False: no state exists for the account (an unknown tick's account)


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


def _asdict(value: object) -> dict[str, object]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]


class AccountScorer:
    """Applies events and ticks to one account's stored record.

    ``record`` is the account's current ``states`` table value (None for a new account) and
    ``card`` its ``cards`` value (None before its first published score).

    Decoding a state costs more than scoring it, so the states of the ``cache_size`` most
    recently used accounts stay decoded, each tagged with the revision it belongs to: a table
    value of another revision (written by another worker, recovered from the changelog) is
    decoded again. :meth:`forget_all` drops the cache (after a rebalance).
    """

    def __init__(self, registry: ModelRegistry, *, cache_size: int = 5000) -> None:
        self._registry = registry
        self._cache: OrderedDict[str, tuple[int, AccountState]] = OrderedDict()
        self._cache_size = cache_size

    def forget_all(self) -> None:
        self._cache.clear()

    def _state(self, account_id: str, stored: AccountRecord) -> AccountState:
        cached = self._cache.get(account_id)
        if cached is not None and cached[0] == stored.header.revision:
            self._cache.move_to_end(account_id)
            return cached[1]
        return AccountState.from_bytes(stored.state)

    def _remember(self, account_id: str, revision: int, state: AccountState) -> None:
        if self._cache_size <= 0:
            return
        self._cache[account_id] = (revision, state)
        self._cache.move_to_end(account_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def on_event(
        self, record: bytes | None, card: bytes | None, event: Event, now: dt.datetime
    ) -> Outcome:
        account_id = event.account_id
        stored = None if record is None else decode_account(record)
        # apply_event mutates the (possibly cached) state: drop it from the cache until the
        # outcome is complete, so a failure half-way never leaves a state the table lacks.
        state = new_state(account_id) if stored is None else self._state(account_id, stored)
        self._cache.pop(account_id, None)
        if not apply_event(state, event):
            if stored is None or record is None or card is None:
                return NOTHING  # an event too old for the retention window of a new account
            self._remember(account_id, stored.header.revision, state)  # not mutated
            return self._republish(event.event_id, stored, record, state, card)
        header = None if stored is None else stored.header
        outcome = self._rescore(
            header, state, card, now, cause="event", event=event, state_changed=True
        )
        if outcome.persist is not None:
            self._remember(account_id, outcome.persist.revision, state)
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
        state = self._state(account_id, stored)
        tick_cause: ScoreCause = cause
        outcome = self._rescore(
            stored.header, state, card, now, cause=tick_cause, event=None, state_changed=False
        )
        self._remember(
            account_id,
            outcome.persist.revision if outcome.persist else stored.header.revision,
            state,
        )
        return outcome

    def _rescore(
        self,
        header: RecordHeader | None,
        state: AccountState,
        card_value: bytes | None,
        now: dt.datetime,
        *,
        cause: ScoreCause,
        event: Event | None,
        state_changed: bool,
    ) -> Outcome:
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
            )
        revision = 1 if header is None else header.revision + 1
        state_bytes = state.to_bytes()
        profile = profile_message(state.profile)
        change: ScoreChanged | None = None
        new_card: bytes | None = None
        if changed:
            previous = (
                _card_from_message(
                    ScoreChanged.model_validate_json(
                        CardRecord.from_bytes(card_value).score_changed_json
                    )
                )
                if card_value is not None
                else None
            )
            moved: tuple[DriverResult, ...] = ()
            if previous is None or model.model_id == previous.model_id:
                # Drivers compare indicators of one model; across models nothing "moved".
                moved = drivers(previous, card)
            change = ScoreChanged(
                account_id=card.account_id,
                profile=profile,
                model_id=card.model_id,
                model_version=card.model_version,
                old_score=None if header is None else header.last_score,
                new_score=card.score,
                old_status=None if header is None else header.last_status,
                new_status=card.status,
                categories=[CategoryScore.model_validate(_asdict(c)) for c in card.categories],
                indicators=[IndicatorScore.model_validate(_asdict(i)) for i in card.indicators],
                drivers=[Driver.model_validate(_asdict(d)) for d in moved],
                cause=cause,
                scored_at=now,
                event_time=event.occurred_at if event is not None else None,
            )
            change_json = change.model_dump_json().encode()
            new_card = CardRecord(
                event.event_id if event is not None else None, change_json
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
        return Outcome(
            record=encode_account(new_header, state_bytes),
            card=new_card,
            scores=change_json if change is not None else None,
            status=change_json if change is not None else None,
            persist=Persist(card.account_id, revision, state_bytes, profile, change),
            change=change,
            next_rescore_epoch=due_epoch,
            current_status=card.status,
            known=True,
        )

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
        profile = profile_message(state.profile)
        return Outcome(
            record=record,
            card=card,
            scores=last.score_changed_json if last.cause_event_id == event_id else None,
            status=last.score_changed_json,
            persist=Persist(message.account_id, header.revision, stored.state, profile, message),
            duplicate=True,
            next_rescore_epoch=header.next_rescore_epoch,
            current_status=header.last_status,
            known=True,
        )
