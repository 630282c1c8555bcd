"""Health Management: drafts, validation, preview, publish, versions, diff and rollback.

A publish runs under the publish lock (a session-level advisory lock) in two transactions:

1. plan the versions and reserve their numbers (``health_models.reserved_version``), commit;
2. insert the version rows, send their ``ModelPublished`` records to Kafka, wait for the
   acknowledgement (idempotent producer, ``acks=all``), and only then commit.

When Kafka fails, the second transaction rolls back: no version row exists, the draft is still
there, and the caller gets 503. Retrying is safe: the retry takes new, higher numbers, so even a
record of the failed attempt that Kafka writes late (the idempotent producer keeps retrying a
batch it has not given up on) is superseded, because scorers keep the highest version per model.
The opposite order (commit, then send) would leave versions in the database that scorers never
heard of whenever the send fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from healthscore.clock import Clock
from healthscore.engine import ModelInvalid, PublishedModel, parse_model
from schemas.messages import ModelPublished
from services.api.catalog import (
    CurrentModel,
    PlannedVersion,
    after_publish,
    current_models,
    plan_publish,
    published_models,
    repository_document,
)
from services.api.diff import Change, diff_documents
from services.api.documents import DocumentRejectedError, Problem
from services.api.metrics import ApiMetrics
from services.api.models_store import ModelRow, PostgresModelStore, VersionRow
from services.api.preview import AccountPreview, PreviewTally, preview_chunk
from services.api.publisher import ModelPublisher

# Accounts scored per worker-thread hop during a preview: large enough to amortise the hop,
# small enough that other requests are served in between.
PREVIEW_CHUNK = 500

NextVersion = Callable[[str], int]
# The versions to publish, and the draft's updated_at they were planned from (None: no draft).
Planned = tuple[tuple[PlannedVersion, ...], dt.datetime | None]


class NotFoundError(Exception):
    """HTTP 404."""


class ConflictError(Exception):
    """HTTP 409."""


class AccountStateSource(Protocol):
    def states(self, chunk_size: int) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every stored account state as ``(account_id, AccountState bytes)``, in chunks."""
        ...


@dataclass(frozen=True)
class Draft:
    model_id: str
    document: dict[str, Any]
    updated_at: dt.datetime | None
    updated_by: str | None
    errors: list[Problem]

    @property
    def valid(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class VersionInfo:
    model_id: str
    version: int
    name: str
    default: bool
    origin: str
    rolled_back_from: int | None
    published_at: dt.datetime | None
    published_by: str | None
    document: dict[str, Any]


@dataclass(frozen=True)
class ModelSummary:
    model_id: str
    name: str | None
    source: Literal["repository", "published", "draft"]
    current_version: int | None
    default: bool
    priority: int | None
    applies_to: dict[str, Any] | None
    has_draft: bool
    draft_updated_at: dt.datetime | None
    versions: list[VersionInfo] = field(default_factory=list)


@dataclass(frozen=True)
class PreviewReport:
    model_id: str
    version: int
    as_of: dt.datetime
    also_publishes: list[tuple[str, int, str]]
    tally: PreviewTally

    @property
    def changes(self) -> list[AccountPreview]:
        return self.tally.listed()


@dataclass(frozen=True)
class DiffReport:
    model_id: str
    from_ref: str
    to_ref: str
    changes: list[Change]


def model_errors(exc: ModelInvalid) -> list[Problem]:
    return [Problem(e.path, e.message) for e in exc.errors]


def validation_errors(document: dict[str, Any]) -> list[Problem]:
    try:
        parse_model(document)
    except ModelInvalid as exc:
        return model_errors(exc)
    return []


def _version_info(row: VersionRow) -> VersionInfo:
    return VersionInfo(
        row.model_id,
        row.version,
        row.name,
        row.is_default,
        row.origin,
        row.rolled_back_from,
        row.published_at,
        row.published_by,
        row.document,
    )


def _announcement(row: VersionRow) -> ModelPublished:
    return ModelPublished(
        model_id=row.model_id,
        version=row.version,
        document=row.document,
        published_at=row.published_at,
        published_by=row.published_by,
    )


def _current_row(row: VersionRow) -> CurrentModel:
    # Stored documents were valid when published; an engine upgrade that rejects one would stop
    # every publish, so the failure surfaces loudly (500) rather than being skipped.
    return CurrentModel(
        PublishedModel(row.model_id, row.version, parse_model(row.document)),
        row.document,
        "published",
    )


class ModelService:
    def __init__(
        self,
        db: AsyncEngine,
        publisher: ModelPublisher,
        states: AccountStateSource,
        *,
        repository: Sequence[PublishedModel],
        clock: Clock,
        metrics: ApiMetrics,
        preview_limit: int = 200,
    ) -> None:
        self._db = db
        self._store = PostgresModelStore()
        self._publisher = publisher
        self._states = states
        self._repository = {m.model_id: m for m in repository}
        self._clock = clock
        self._metrics = metrics
        self._preview_limit = preview_limit

    # --- drafts ------------------------------------------------------------------------------

    async def create_draft(self, document: dict[str, Any], by: str | None) -> Draft:
        model_id = document["id"]
        now = self._clock.now()
        async with self._db.begin() as conn:
            if not await self._store.create_draft(conn, model_id, document, by, now):
                raise ConflictError(f"model {model_id!r} has a draft already: update it with PUT")
        return Draft(model_id, document, now, by, validation_errors(document))

    async def update_draft(self, model_id: str, document: dict[str, Any], by: str | None) -> Draft:
        if document["id"] != model_id:
            raise DocumentRejectedError(
                [Problem("id", f"must be {model_id!r}, the model in the URL")]
            )
        now = self._clock.now()
        async with self._db.begin() as conn:
            if not await self._store.replace_draft(conn, model_id, document, by, now):
                raise NotFoundError(
                    f"model {model_id!r} has no draft: create one with POST /v1/models"
                )
        return Draft(model_id, document, now, by, validation_errors(document))

    async def get_draft(self, model_id: str) -> Draft:
        row = await self._model_row(model_id)
        if row is None or row.draft is None:
            raise NotFoundError(f"model {model_id!r} has no draft")
        return Draft(
            model_id,
            row.draft,
            row.draft_updated_at,
            row.draft_updated_by,
            validation_errors(row.draft),
        )

    async def delete_draft(self, model_id: str, by: str | None) -> None:
        async with self._db.begin() as conn:
            if not await self._store.replace_draft(conn, model_id, None, by, self._clock.now()):
                raise NotFoundError(f"model {model_id!r} has no draft")

    async def validate_draft(self, model_id: str) -> Draft:
        """The draft when valid; raises ``ModelInvalid`` with every error otherwise."""
        draft = await self.get_draft(model_id)
        parse_model(draft.document)
        return draft

    # --- preview and publish -----------------------------------------------------------------

    async def preview_draft(self, model_id: str, limit: int | None = None) -> PreviewReport:
        draft = await self.get_draft(model_id)
        async with self._db.connect() as conn:
            current = await self._current(conn)
            reserved = await self._store.reserved_versions(conn)
        plan = plan_publish(current, draft.document, lambda m: reserved.get(m, 0) + 1)
        candidate = published_models(after_publish(self._repository.values(), current, plan))
        now = self._clock.now()
        tally = PreviewTally(limit=limit or self._preview_limit)
        models = published_models(current)
        async for chunk in self._states.states(PREVIEW_CHUNK):
            # CPU-bound scoring off the event loop, so other requests keep being answered.
            await asyncio.to_thread(preview_chunk, chunk, models, candidate, now, tally)
        return PreviewReport(
            model_id,
            plan[0].version,
            now,
            [(p.model_id, p.version, p.origin) for p in plan[1:]],
            tally,
        )

    async def publish_draft(self, model_id: str, by: str | None) -> list[VersionInfo]:
        async def plan(conn: AsyncConnection, next_version: NextVersion) -> Planned:
            row = await self._store.get_model(conn, model_id)
            if row is None or row.draft is None:
                raise NotFoundError(f"model {model_id!r} has no draft to publish")
            current = await self._current(conn)
            return plan_publish(current, row.draft, next_version), row.draft_updated_at

        return await self._publish(plan, by, clear_draft_of=model_id)

    async def rollback(self, model_id: str, version: int, by: str | None) -> list[VersionInfo]:
        async def plan(conn: AsyncConnection, next_version: NextVersion) -> Planned:
            document = await self._document(conn, model_id, version)
            current = await self._current(conn)
            if model_id in current and current[model_id].version == version:
                raise ConflictError(f"version {version} of {model_id!r} is the current version")
            planned = plan_publish(
                current, document, next_version, origin="rollback", rolled_back_from=version
            )
            return planned, None

        return await self._publish(plan, by)

    async def _publish(
        self,
        plan: Callable[[AsyncConnection, NextVersion], Awaitable[Planned]],
        by: str | None,
        *,
        clear_draft_of: str | None = None,
    ) -> list[VersionInfo]:
        """Plan, reserve the version numbers (committed), then insert the versions, announce
        them on Kafka and commit; all under the publish lock. A Kafka failure rolls the second
        transaction back and leaves only the burnt numbers behind."""
        async with self._db.connect() as conn:
            await self._store.lock_for_publish(conn)
            await conn.commit()
            try:
                reserved = await self._store.reserved_versions(conn)
                planned, draft_stamp = await plan(conn, lambda m: reserved.get(m, 0) + 1)
                await self._store.reserve_versions(conn, {p.model_id: p.version for p in planned})
                await conn.commit()

                now = self._clock.now()
                rows = [
                    VersionRow(
                        p.model_id,
                        p.version,
                        p.model.name,
                        bool(p.model.default),
                        p.document,
                        p.origin,
                        p.rolled_back_from,
                        now,
                        by,
                    )
                    for p in planned
                ]
                await self._store.insert_versions(conn, rows)
                if clear_draft_of is not None:
                    # An edit saved while publishing stays as the next draft.
                    await self._store.replace_draft(
                        conn, clear_draft_of, None, by, now, if_updated_at=draft_stamp
                    )
                # Last step before commit: a Kafka failure raises and rolls the rows back.
                await self._publisher.publish([_announcement(r) for r in rows])
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
            finally:
                await self._release(conn)
        self._metrics.models_published.inc(len(rows))
        return [_version_info(v) for v in rows]

    async def _release(self, conn: AsyncConnection) -> None:
        try:
            await self._store.unlock_publish(conn)
            await conn.commit()
        except Exception:
            # A broken connection took its session lock with it; never return it to the pool.
            await conn.invalidate()

    # --- reads -------------------------------------------------------------------------------

    async def list_models(self) -> list[ModelSummary]:
        async with self._db.connect() as conn:
            rows = {r.model_id: r for r in await self._store.list_models(conn)}
            current = await self._current(conn)
        ids = sorted(set(rows) | set(current))
        return [self._summary(i, rows.get(i), current.get(i)) for i in ids]

    async def get_model(self, model_id: str) -> ModelSummary:
        async with self._db.connect() as conn:
            row = await self._store.get_model(conn, model_id)
            current = await self._current(conn)
            versions = [_version_info(v) for v in await self._store.versions(conn, model_id)]
        if row is None and model_id not in current:
            raise NotFoundError(f"no model {model_id!r}")
        if model_id in self._repository:
            versions.append(self._repository_version(model_id))
        summary = self._summary(model_id, row, current.get(model_id))
        return ModelSummary(**{**summary.__dict__, "versions": versions})

    async def get_version(self, model_id: str, version: int) -> VersionInfo:
        if version == 0 and model_id in self._repository:
            return self._repository_version(model_id)
        async with self._db.connect() as conn:
            row = await self._store.get_version(conn, model_id, version)
        if row is None:
            raise NotFoundError(f"model {model_id!r} has no version {version}")
        return _version_info(row)

    async def diff(self, model_id: str, from_ref: str, to_ref: str) -> DiffReport:
        async with self._db.connect() as conn:
            old = await self._resolve(conn, model_id, from_ref)
            new = await self._resolve(conn, model_id, to_ref)
        return DiffReport(model_id, from_ref, to_ref, diff_documents(old, new))

    async def current(self) -> tuple[PublishedModel, ...]:
        """The models in force (what the scorers use)."""
        async with self._db.connect() as conn:
            return published_models(await self._current(conn))

    async def _resolve(self, conn: AsyncConnection, model_id: str, ref: str) -> dict[str, Any]:
        """A document by reference: a version number, ``current`` or ``draft``."""
        if ref == "draft":
            row = await self._store.get_model(conn, model_id)
            if row is None or row.draft is None:
                raise NotFoundError(f"model {model_id!r} has no draft")
            return row.draft
        if ref == "current":
            current = await self._current(conn)
            if model_id not in current:
                raise NotFoundError(f"model {model_id!r} has no published version")
            return current[model_id].document
        try:
            version = int(ref)
        except ValueError:
            raise DocumentRejectedError(
                [Problem(ref, "a version is a number, 'current' or 'draft'")]
            ) from None
        return await self._document(conn, model_id, version)

    async def _document(self, conn: AsyncConnection, model_id: str, version: int) -> dict[str, Any]:
        if version == 0 and model_id in self._repository:
            return repository_document(self._repository[model_id].model)
        row = await self._store.get_version(conn, model_id, version)
        if row is None:
            raise NotFoundError(f"model {model_id!r} has no version {version}")
        return row.document

    async def _current(self, conn: AsyncConnection) -> dict[str, CurrentModel]:
        latest = [_current_row(r) for r in await self._store.latest_versions(conn)]
        return current_models(self._repository.values(), latest)

    async def _model_row(self, model_id: str) -> ModelRow | None:
        async with self._db.connect() as conn:
            return await self._store.get_model(conn, model_id)

    def _repository_version(self, model_id: str) -> VersionInfo:
        model = self._repository[model_id].model
        return VersionInfo(
            model_id,
            0,
            model.name,
            bool(model.default),
            "repository",
            None,
            None,
            None,
            repository_document(model),
        )

    def _summary(
        self, model_id: str, row: ModelRow | None, current: CurrentModel | None
    ) -> ModelSummary:
        model = current.published.model if current is not None else None
        return ModelSummary(
            model_id=model_id,
            name=model.name
            if model is not None
            else (row.draft or {}).get("name")
            if row
            else None,
            source=current.source if current is not None else "draft",
            current_version=current.version if current is not None else None,
            default=bool(model.default) if model is not None else False,
            priority=model.priority if model is not None else None,
            applies_to=model.applies_to.model_dump(mode="json") if model is not None else None,
            has_draft=row is not None and row.draft is not None,
            draft_updated_at=row.draft_updated_at if row is not None else None,
        )
