"""The account profile, assembled from ``account`` events field by field."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Profile:
    """What the latest ``account`` events say about an account (last write wins per field)."""

    name: str | None = None
    lifecycle_stage: str | None = None
    segment: str | None = None
    owner: str | None = None
    licenses: int | None = None
    arr_cents: int | None = None
    renewal_date: dt.date | None = None
    parent_account_id: str | None = None


PROFILE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Profile))
