"""PostgreSQL persistence of drafts and published versions (healthscore/db/tables/health_models).

Every method takes the connection of the caller's transaction, so one publish (lock, read the
current versions, insert, announce on Kafka, commit) is one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from healthscore.db.tables.health_models import (
    PUBLISH_LOCK_KEY,
    health_model_versions,
    health_models,
)


@dataclass(frozen=True)
class ModelRow:
    model_id: str
    draft: dict[str, Any] | None
    draft_updated_at: dt.datetime | None
    draft_updated_by: str | None
    latest_version: int
    reserved_version: int
    created_at: dt.datetime


@dataclass(frozen=True)
class VersionRow:
    model_id: str
    version: int
    name: str
    is_default: bool
    document: dict[str, Any]
    origin: str
    rolled_back_from: int | None
    published_at: dt.datetime
    published_by: str | None


def _model(row: sa.Row[Any]) -> ModelRow:
    m = row._mapping
    return ModelRow(
        m["model_id"],
        m["draft"],
        m["draft_updated_at"],
        m["draft_updated_by"],
        m["latest_version"],
        m["reserved_version"],
        m["created_at"],
    )


def _version(row: sa.Row[Any]) -> VersionRow:
    m = row._mapping
    return VersionRow(
        m["model_id"],
        m["version"],
        m["name"],
        m["is_default"],
        m["document"],
        m["origin"],
        m["rolled_back_from"],
        m["published_at"],
        m["published_by"],
    )


class PostgresModelStore:
    async def lock_for_publish(self, conn: AsyncConnection) -> None:
        """Serialise publishes (version numbers, the default rule) until
        :meth:`unlock_publish`, across transactions on this connection; a connection that dies
        releases it."""
        await conn.execute(sa.select(sa.func.pg_advisory_lock(PUBLISH_LOCK_KEY)))

    async def unlock_publish(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.select(sa.func.pg_advisory_unlock(PUBLISH_LOCK_KEY)))

    async def reserved_versions(self, conn: AsyncConnection) -> dict[str, int]:
        """The highest version number handed out so far, by model id."""
        c = health_models.c
        rows = await conn.execute(sa.select(c.model_id, c.reserved_version, c.latest_version))
        return {r.model_id: max(r.reserved_version, r.latest_version) for r in rows}

    async def reserve_versions(self, conn: AsyncConnection, versions: dict[str, int]) -> None:
        """Record ``versions`` as handed out (commit before announcing them)."""
        for model_id, version in versions.items():
            await conn.execute(
                insert(health_models)
                .values(model_id=model_id, reserved_version=version)
                .on_conflict_do_update(
                    index_elements=[health_models.c.model_id],
                    set_={"reserved_version": version},
                )
            )

    async def get_model(
        self, conn: AsyncConnection, model_id: str, *, for_update: bool = False
    ) -> ModelRow | None:
        query = sa.select(health_models).where(health_models.c.model_id == model_id)
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return _model(row) if row is not None else None

    async def list_models(self, conn: AsyncConnection) -> list[ModelRow]:
        rows = await conn.execute(sa.select(health_models).order_by(health_models.c.model_id))
        return [_model(r) for r in rows]

    async def create_draft(
        self,
        conn: AsyncConnection,
        model_id: str,
        document: dict[str, Any],
        by: str | None,
        now: dt.datetime,
    ) -> bool:
        """Store a draft unless the model has one already; False when it has."""
        values = {"draft": document, "draft_updated_at": now, "draft_updated_by": by}
        statement = (
            insert(health_models)
            .values(model_id=model_id, **values)
            .on_conflict_do_update(
                index_elements=[health_models.c.model_id],
                set_=values,
                where=health_models.c.draft.is_(None),
            )
            .returning(health_models.c.model_id)
        )
        return (await conn.execute(statement)).first() is not None

    async def replace_draft(
        self,
        conn: AsyncConnection,
        model_id: str,
        document: dict[str, Any] | None,
        by: str | None,
        now: dt.datetime,
        *,
        if_updated_at: dt.datetime | None = None,
    ) -> bool:
        """Replace (or, with ``None``, discard) an existing draft; False when there is none (or,
        with ``if_updated_at``, when the draft was saved again since)."""
        condition = [health_models.c.model_id == model_id, health_models.c.draft.is_not(None)]
        if if_updated_at is not None:
            condition.append(health_models.c.draft_updated_at == if_updated_at)
        statement = (
            health_models.update()
            .where(*condition)
            # sa.null(): a plain None would be stored as the JSON value null, not SQL NULL.
            .values(
                draft=document if document is not None else sa.null(),
                draft_updated_at=now,
                draft_updated_by=by,
            )
            .returning(health_models.c.model_id)
        )
        return (await conn.execute(statement)).first() is not None

    async def latest_versions(self, conn: AsyncConnection) -> list[VersionRow]:
        """The latest published version of every model."""
        v, m = health_model_versions.c, health_models.c
        query = (
            sa.select(health_model_versions)
            .join(health_models, sa.and_(m.model_id == v.model_id, m.latest_version == v.version))
            .order_by(v.model_id)
        )
        return [_version(r) for r in await conn.execute(query)]

    async def versions(self, conn: AsyncConnection, model_id: str) -> list[VersionRow]:
        v = health_model_versions.c
        query = (
            sa.select(health_model_versions)
            .where(v.model_id == model_id)
            .order_by(v.version.desc())
        )
        return [_version(r) for r in await conn.execute(query)]

    async def get_version(
        self, conn: AsyncConnection, model_id: str, version: int
    ) -> VersionRow | None:
        v = health_model_versions.c
        query = sa.select(health_model_versions).where(v.model_id == model_id, v.version == version)
        row = (await conn.execute(query)).first()
        return _version(row) if row is not None else None

    async def insert_versions(self, conn: AsyncConnection, rows: Sequence[VersionRow]) -> None:
        """Insert published versions and move each model's ``latest_version`` to them."""
        for row in rows:
            await conn.execute(
                insert(health_models)
                .values(model_id=row.model_id, latest_version=row.version)
                .on_conflict_do_update(
                    index_elements=[health_models.c.model_id],
                    set_={"latest_version": row.version},
                )
            )
            await conn.execute(
                health_model_versions.insert().values(
                    model_id=row.model_id,
                    version=row.version,
                    name=row.name,
                    is_default=row.is_default,
                    document=row.document,
                    origin=row.origin,
                    rolled_back_from=row.rolled_back_from,
                    published_at=row.published_at,
                    published_by=row.published_by,
                )
            )
