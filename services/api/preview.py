"""What publishing a draft would do to the accounts, computed with the scoring engine.

For every stored account state, the model that applies today and the one that would apply once
the draft is published are chosen with ``engine.select_model``; the accounts where they differ
(the draft's model, a demoted default, or the repository's models giving way to the first
published one) are scored with both at the same ``as_of`` (``engine.score``), so the comparison
shows the model change alone, not what time did since the stored score. Pure: the caller feeds
states in chunks and keeps the clock.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from healthscore.engine import AccountState, PublishedModel, score, select_model


@dataclass(frozen=True)
class AccountPreview:
    account_id: str
    name: str | None
    old_model_id: str
    old_model_version: int
    old_score: float
    old_status: str
    new_model_id: str
    new_model_version: int
    new_score: float
    new_status: str

    @property
    def status_changed(self) -> bool:
        return self.old_status != self.new_status

    @property
    def score_delta(self) -> float:
        return round(self.new_score - self.old_score, 1)


@dataclass
class PreviewTally:
    """Accumulates :class:`AccountPreview` results; lists at most ``limit`` status changes
    (largest score moves first), while every count covers all accounts."""

    limit: int
    accounts_scanned: int = 0
    accounts_unreadable: int = 0
    accounts_affected: int = 0
    scores_changed: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    changes: list[AccountPreview] = field(default_factory=list)
    total_score_delta: float = 0.0

    @property
    def status_changes(self) -> int:
        return sum(self.transitions.values())

    def add(self, result: AccountPreview) -> None:
        self.accounts_affected += 1
        self.total_score_delta += result.new_score - result.old_score
        if result.new_score != result.old_score:
            self.scores_changed += 1
        if result.status_changed:
            self.transitions[f"{result.old_status}->{result.new_status}"] += 1
            self.changes.append(result)
            if len(self.changes) > 2 * self.limit:
                self._trim()

    def _trim(self) -> None:
        self.changes.sort(key=lambda r: (-abs(r.new_score - r.old_score), r.account_id))
        del self.changes[self.limit :]

    def listed(self) -> list[AccountPreview]:
        self._trim()
        return list(self.changes)

    @property
    def mean_score_delta(self) -> float | None:
        if not self.accounts_affected:
            return None
        return round(self.total_score_delta / self.accounts_affected, 2)


def preview_chunk(
    states: Iterable[tuple[str, bytes]],
    current: Sequence[PublishedModel],
    candidate: Sequence[PublishedModel],
    as_of: dt.datetime,
    tally: PreviewTally,
) -> None:
    """Score the accounts of one chunk with the current and candidate models into ``tally``."""
    for account_id, blob in states:
        tally.accounts_scanned += 1
        try:
            state = AccountState.from_bytes(blob)
        except Exception:  # a state written by an unknown format version: counted, not fatal
            tally.accounts_unreadable += 1
            continue
        old_model = select_model(current, state.profile)
        new_model = select_model(candidate, state.profile)
        if (old_model.model_id, old_model.version) == (new_model.model_id, new_model.version):
            continue  # same model and version before and after: nothing to compare
        old = score(state, old_model, as_of)
        new = score(state, new_model, as_of)
        tally.add(
            AccountPreview(
                account_id=account_id,
                name=state.profile.name,
                old_model_id=old.model_id,
                old_model_version=old.model_version,
                old_score=old.score,
                old_status=old.status,
                new_model_id=new.model_id,
                new_model_version=new.model_version,
                new_score=new.score,
                new_status=new.status,
            )
        )
