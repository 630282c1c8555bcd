"""Binary values of the scorer's two changelog-backed tables, and the tick record.

``states`` table (key: account_id UTF-8; written for every event that changed the state):
an :class:`AccountRecord`, a fixed header followed by the engine's ``AccountState.to_bytes()``.
The header repeats what the scorer needs without decoding the state: the last published score
and status, the model that produced it, the fingerprint of the model set it was scored with
(stale after a publish), and when the state's windows next slide (the decay timer's due time).
The due-index is rebuilt from headers alone after a rebalance.

``cards`` table (same key; written only when a score change is published): a
:class:`CardRecord`, the ``ScoreChanged`` JSON last published for the account and the event_id
that caused it. It is the "previous" side of the next change's drivers, and lets a redelivered
event re-publish the change it caused if the crash lost it.

Both start with a format byte so that a later format can be read next to this one.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass
from typing import Literal

import orjson

from schemas.messages import Status

FORMAT = 1
MODEL_FINGERPRINT_SIZE = 8

_STATUS_CODES: dict[Status | None, int] = {None: 0, "red": 1, "amber": 2, "green": 3}
_STATUSES: tuple[Status | None, ...] = (None, "red", "amber", "green")

# format, revision, next_rescore_at (Unix seconds, NaN = never), last score (NaN = none),
# last status code, model version, model-set fingerprint, model id length.
_HEADER = struct.Struct(f"<BQddBi{MODEL_FINGERPRINT_SIZE}sB")
_CARD_HEADER = struct.Struct("<BB")


class RecordFormatError(ValueError):
    """A table value this code cannot read (corrupt, or written by a newer format)."""


def _epoch(moment: dt.datetime | None) -> float:
    return math.nan if moment is None else moment.timestamp()


def _moment(epoch: float) -> dt.datetime | None:
    return None if math.isnan(epoch) else dt.datetime.fromtimestamp(epoch, dt.UTC)


@dataclass(frozen=True, slots=True)
class RecordHeader:
    revision: int
    next_rescore_epoch: float  # NaN when nothing can change with time alone
    last_score: float | None
    last_status: Status | None
    model_id: str | None
    model_version: int
    models_fingerprint: bytes

    @property
    def next_rescore_at(self) -> dt.datetime | None:
        return _moment(self.next_rescore_epoch)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    header: RecordHeader
    state: bytes

    def to_bytes(self) -> bytes:
        return encode_account(self.header, self.state)


def encode_account(header: RecordHeader, state: bytes) -> bytes:
    model_id = (header.model_id or "").encode()
    if len(model_id) > 255:
        raise ValueError("model id longer than 255 bytes")
    return (
        _HEADER.pack(
            FORMAT,
            header.revision,
            header.next_rescore_epoch,
            math.nan if header.last_score is None else header.last_score,
            _STATUS_CODES[header.last_status],
            header.model_version,
            header.models_fingerprint,
            len(model_id),
        )
        + model_id
        + state
    )


def decode_header(value: bytes) -> tuple[RecordHeader, int]:
    """The header of a ``states`` value and the offset where the engine state starts."""
    try:
        fmt, revision, due, score, status, version, fingerprint, id_len = _HEADER.unpack_from(value)
    except struct.error as exc:
        raise RecordFormatError(f"states value too short: {exc}") from exc
    if fmt != FORMAT:
        raise RecordFormatError(f"unknown states value format {fmt}")
    start = _HEADER.size + id_len
    model_id = value[_HEADER.size : start].decode() if id_len else None
    header = RecordHeader(
        revision=revision,
        next_rescore_epoch=due,
        last_score=None if math.isnan(score) else score,
        last_status=_STATUSES[status],
        model_id=model_id,
        model_version=version,
        models_fingerprint=fingerprint,
    )
    return header, start


def decode_account(value: bytes) -> AccountRecord:
    header, start = decode_header(value)
    return AccountRecord(header, value[start:])


@dataclass(frozen=True, slots=True)
class CardRecord:
    cause_event_id: str | None
    score_changed_json: bytes

    def to_bytes(self) -> bytes:
        event_id = (self.cause_event_id or "").encode()
        return _CARD_HEADER.pack(FORMAT, len(event_id)) + event_id + self.score_changed_json

    @classmethod
    def from_bytes(cls, value: bytes) -> CardRecord:
        try:
            fmt, id_len = _CARD_HEADER.unpack_from(value)
        except struct.error as exc:
            raise RecordFormatError(f"cards value too short: {exc}") from exc
        if fmt != FORMAT:
            raise RecordFormatError(f"unknown cards value format {fmt}")
        start = _CARD_HEADER.size + id_len
        event_id = value[_CARD_HEADER.size : start].decode() if id_len else None
        return cls(event_id, value[start:])


TickCause = Literal["time", "model"]


def encode_tick(cause: TickCause) -> bytes:
    """A rescore request for the account in the record key."""
    return orjson.dumps({"tick": cause})
