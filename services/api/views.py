"""The api's HTTP wire format (response bodies), converted from the service layer's results."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.messages import CategoryScore, Driver, IndicatorScore, Status
from services.api.accounts import AccountDetail, Page
from services.api.diff import Change
from services.api.documents import Problem
from services.api.models_service import (
    DiffReport,
    Draft,
    ModelSummary,
    PreviewReport,
    VersionInfo,
)
from services.api.preview import AccountPreview


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProblemOut(_Out):
    path: str = Field(description="where, e.g. categories[1].indicators[0].good ('' = document)")
    message: str

    @classmethod
    def of(cls, p: Problem) -> ProblemOut:
        return cls(path=p.path, message=p.message)


class ErrorOut(_Out):
    detail: str
    errors: list[ProblemOut] = Field(default_factory=list)


class DraftOut(_Out):
    model_id: str
    document: dict[str, Any]
    updated_at: dt.datetime | None
    updated_by: str | None
    valid: bool
    errors: list[ProblemOut]

    @classmethod
    def of(cls, d: Draft) -> DraftOut:
        return cls(
            model_id=d.model_id,
            document=d.document,
            updated_at=d.updated_at,
            updated_by=d.updated_by,
            valid=d.valid,
            errors=[ProblemOut.of(p) for p in d.errors],
        )


class ValidationOut(_Out):
    model_id: str
    valid: Literal[True] = True


class VersionSummaryOut(_Out):
    model_id: str
    version: int = Field(description="0 = the repository's built-in model")
    name: str
    default: bool
    origin: Literal["repository", "publish", "rollback", "default_transfer"]
    rolled_back_from: int | None
    published_at: dt.datetime | None
    published_by: str | None

    @classmethod
    def of(cls, v: VersionInfo) -> VersionSummaryOut:
        return cls.model_validate({**v.__dict__, "document": None})


class VersionOut(VersionSummaryOut):
    document: dict[str, Any]

    @classmethod
    def of(cls, v: VersionInfo) -> VersionOut:
        return cls.model_validate(v.__dict__)


class ModelOut(_Out):
    model_id: str
    name: str | None
    source: Literal["repository", "published", "draft"] = Field(
        description="where the model in force comes from; 'draft' = never published"
    )
    current_version: int | None
    default: bool
    priority: int | None
    applies_to: dict[str, Any] | None
    has_draft: bool
    draft_updated_at: dt.datetime | None

    @classmethod
    def of(cls, m: ModelSummary) -> ModelOut:
        return cls.model_validate({k: v for k, v in m.__dict__.items() if k != "versions"})


class ModelDetailOut(ModelOut):
    versions: list[VersionSummaryOut] = Field(description="newest first")

    @classmethod
    def of(cls, m: ModelSummary) -> ModelDetailOut:
        data = {k: v for k, v in m.__dict__.items() if k != "versions"}
        return cls.model_validate(
            {**data, "versions": [VersionSummaryOut.of(v) for v in m.versions]}
        )


class ModelListOut(_Out):
    models: list[ModelOut]


class PublishedOut(_Out):
    published: list[VersionSummaryOut] = Field(
        description="the new version first, then any previous default demoted by it"
    )

    @classmethod
    def of(cls, versions: list[VersionInfo]) -> PublishedOut:
        return cls(published=[VersionSummaryOut.of(v) for v in versions])


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=0, description="the version whose document is published again")


class AccountChangeOut(_Out):
    account_id: str
    name: str | None
    old_model_id: str
    old_model_version: int
    old_score: float
    old_status: Status
    new_model_id: str
    new_model_version: int
    new_score: float
    new_status: Status
    score_delta: float

    @classmethod
    def of(cls, a: AccountPreview) -> AccountChangeOut:
        return cls.model_validate({**a.__dict__, "score_delta": a.score_delta})


class PlannedVersionOut(_Out):
    model_id: str
    version: int
    origin: str


class PreviewOut(_Out):
    model_id: str
    version: int = Field(description="the version number publishing would create")
    as_of: dt.datetime
    also_publishes: list[PlannedVersionOut]
    accounts_scanned: int
    accounts_unreadable: int
    accounts_affected: int = Field(description="accounts scored by this model before or after")
    scores_changed: int
    status_changes: int
    transitions: dict[str, int] = Field(description='e.g. {"green->amber": 3}')
    mean_score_delta: float | None
    changes: list[AccountChangeOut] = Field(description="status changes, largest moves first")
    changes_truncated: bool

    @classmethod
    def of(cls, r: PreviewReport) -> PreviewOut:
        t = r.tally
        changes = r.changes
        return cls(
            model_id=r.model_id,
            version=r.version,
            as_of=r.as_of,
            also_publishes=[
                PlannedVersionOut(model_id=m, version=v, origin=o) for m, v, o in r.also_publishes
            ],
            accounts_scanned=t.accounts_scanned,
            accounts_unreadable=t.accounts_unreadable,
            accounts_affected=t.accounts_affected,
            scores_changed=t.scores_changed,
            status_changes=t.status_changes,
            transitions=dict(t.transitions),
            mean_score_delta=t.mean_score_delta,
            changes=[AccountChangeOut.of(a) for a in changes],
            changes_truncated=len(changes) < t.status_changes,
        )


class ChangeOut(_Out):
    op: Literal["added", "removed", "changed"]
    path: str
    old: Any = None
    new: Any = None

    @classmethod
    def of(cls, c: Change) -> ChangeOut:
        return cls(op=c.op, path=c.path, old=c.old, new=c.new)


class DiffOut(_Out):
    model_id: str
    from_: str = Field(alias="from")
    to: str
    changes: list[ChangeOut]

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    @classmethod
    def of(cls, d: DiffReport) -> DiffOut:
        return cls(
            model_id=d.model_id,
            from_=d.from_ref,
            to=d.to_ref,
            changes=[ChangeOut.of(c) for c in d.changes],
        )


class AccountOut(_Out):
    account_id: str
    name: str | None
    score: float
    status: Status
    previous_score: float | None
    previous_status: Status | None
    score_change: float | None
    lifecycle_stage: str | None
    segment: str | None
    owner: str | None
    renewal_date: dt.date | None
    arr_cents: int | None
    licenses: int | None
    model_id: str
    model_version: int
    scored_at: dt.datetime


class AccountPageOut(_Out):
    items: list[AccountOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")

    @classmethod
    def of(cls, page: Page) -> AccountPageOut:
        return cls.model_validate({"items": page.items, "next_cursor": page.next_cursor})


class HistoryItemOut(_Out):
    scored_at: dt.datetime
    score: float
    status: Status
    old_score: float | None
    old_status: Status | None
    model_id: str
    model_version: int
    cause: Literal["event", "time", "model"]
    event_time: dt.datetime | None
    drivers: list[Driver]
    categories: list[CategoryScore]


class HistoryPageOut(_Out):
    items: list[HistoryItemOut] = Field(description="newest first")
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> HistoryPageOut:
        return cls.model_validate({"items": page.items, "next_cursor": page.next_cursor})


class AccountDetailOut(AccountOut):
    categories: list[CategoryScore]
    indicators: list[IndicatorScore]
    drivers: list[Driver] = Field(description="what moved the latest change most")
    cause: Literal["event", "time", "model"]
    event_time: dt.datetime | None
    updated_at: dt.datetime
    history: HistoryPageOut

    @classmethod
    def of(cls, d: AccountDetail) -> AccountDetailOut:
        return cls.model_validate({**d.account, "history": HistoryPageOut.of(d.history)})
