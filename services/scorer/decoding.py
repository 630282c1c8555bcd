"""Turn a raw input record (bytes from Kafka) into an event, a tick, or a rejection.

faust's own codecs log and skip a record that fails to decode; the scorer consumes raw bytes and
decodes here so that every bad record reaches events.dlq with a reason. Rejection details name
fields and messages only, never the record's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson
from pydantic import ValidationError

from schemas.events import Event, EventType, parse_event
from services.scorer.records import TickCause

RejectReason = Literal[
    "decode_error", "validation_error", "key_mismatch", "topic_mismatch", "processing_error"
]

_DETAIL_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Tick:
    account_id: str
    cause: TickCause


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str


Decoded = Event | Tick | Rejected


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else str(error["msg"]))
    return "; ".join(parts)[:_DETAIL_LIMIT]


def decode_event(key: bytes | None, value: bytes | None, expected: EventType) -> Event | Rejected:
    """Validate an events.<type> record; its key must be the event's account_id (the key decides
    the partition, and so which worker holds the account's state)."""
    if value is None:
        return Rejected("decode_error", "record has no value")
    try:
        event = parse_event(value)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors(include_url=False)):
            return Rejected("decode_error", "value is not valid JSON")
        return Rejected("validation_error", _validation_detail(exc))
    if event.type != expected:
        return Rejected("topic_mismatch", f"type {event.type!r} on the events.{expected} topic")
    if key != event.account_id.encode():
        return Rejected("key_mismatch", "record key is not the event's account_id")
    return event


def decode_tick(key: bytes | None, value: bytes | None) -> Tick | Rejected:
    if not key or value is None:
        return Rejected("decode_error", "tick without key or value")
    try:
        cause = orjson.loads(value).get("tick")
        account_id = key.decode()
    except (orjson.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return Rejected("decode_error", "tick is not a JSON object with a UTF-8 key")
    if cause not in ("time", "model"):
        return Rejected("validation_error", "tick: must be 'time' or 'model'")
    return Tick(account_id, cause)
