"""When a quiet account's score can next change with time alone."""

from __future__ import annotations

import datetime as dt

from healthscore.engine.catalogue import OPEN_TICKET_STATUSES
from healthscore.engine.state import DAY_US, AccountState, to_micros

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def next_rescore_at(state: AccountState, as_of: dt.datetime) -> dt.datetime | None:
    """The earliest moment after ``as_of`` at which a time-dependent metric can change.

    Windows, ``days_since``, ticket ages and ``days_to_renewal`` move at UTC midnight; an issued
    invoice becomes overdue at its ``due_at``. None when nothing in the state depends on time.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    as_of_us = to_micros(as_of)
    candidates: list[int] = []
    daily = (
        state.newest_day is not None
        or any(state.latest.values())
        or state.profile.renewal_date is not None
        or any(t[0] in OPEN_TICKET_STATUSES for t in state.tickets.values())
    )
    if daily:
        candidates.append((as_of_us // DAY_US + 1) * DAY_US)
    for invoice in state.invoices.values():
        due = invoice[3]
        if invoice[0] == "issued" and isinstance(due, int) and due >= as_of_us:
            # overdue means due_at < as_of: the first moment that holds is one microsecond later
            candidates.append(due + 1)
    if not candidates:
        return None
    return _EPOCH + dt.timedelta(microseconds=min(candidates))
