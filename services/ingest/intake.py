"""From a request body to events ready for Kafka, and the per-item answer (no I/O here).

The body is one event (a JSON object) or a batch (a JSON array). Each item is validated on its
own: valid items become Kafka records, invalid ones are reported with their index and field
errors. Field paths are the event's own (``payload.score``), without pydantic's union tag.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from healthscore.topics import Topics
from schemas.events import Event, encode_event

_BATCH_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])

# Bounds on what one refused item reports: a client's typo list, not an echo of its body.
MAX_ERRORS_PER_ITEM = 20
MAX_FIELD_CHARS = 200


class FieldError(BaseModel):
    field: str = Field(description="dotted path inside the event, e.g. payload.score; '' = whole")
    message: str
    type: str = Field(description="pydantic error type, e.g. missing, extra_forbidden")


class RejectedItem(BaseModel):
    index: int | None = Field(
        description="position in the batch (0 for a single event); null: body"
    )
    event_id: str | None = None
    errors: list[FieldError]


class IngestResponse(BaseModel):
    accepted: int = Field(description="events acknowledged by Kafka")
    event_ids: list[str] = Field(description="event_id of each accepted event, in request order")
    rejected: list[RejectedItem] = Field(description="items refused, with their field errors")


class Problem(BaseModel):
    detail: str


class BatchTooLargeError(Exception):
    """The batch has more items than allowed (answered 413)."""

    def __init__(self, items: int, limit: int) -> None:
        super().__init__(f"the batch has {items} items; at most {limit} are accepted per request")
        self.items = items


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes


@dataclass
class Intake:
    """The outcome of validating one body."""

    items: int
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)
    malformed: bool = False

    def records(self, topics: Topics) -> list[KafkaRecord]:
        return [
            KafkaRecord(topics.event(e.type), e.account_id.encode(), encode_event(e))
            for e in self.events
        ]

    def response(self) -> IngestResponse:
        return IngestResponse(
            accepted=len(self.events),
            event_ids=[e.event_id for e in self.events],
            rejected=self.rejected,
        )


def _body_error(message: str, error_type: str) -> Intake:
    error = FieldError(field="", message=message, type=error_type)
    return Intake(items=0, rejected=[RejectedItem(index=None, errors=[error])], malformed=True)


def decode(
    body: bytes, *, max_items: int, default_source: str, latest: dt.datetime | None = None
) -> Intake:
    """Validate a body; raises :class:`BatchTooLargeError` above ``max_items`` items.

    ``default_source`` fills ``source`` where an item has none (the API key's source). Items whose
    ``occurred_at`` is after ``latest`` are refused: a far-future event time would move every
    window of the account and push its history out of retention.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position only, never the content.
        return _body_error(f"the body is not valid UTF-8 JSON: {exc}", "json_invalid")
    if isinstance(data, dict):
        items: list[Any] = [data]
    elif isinstance(data, list):
        items = data
    else:
        return _body_error("expected an event object or an array of events", "body_type")
    if not items:
        return _body_error("the batch is empty", "too_short")
    if len(items) > max_items:
        raise BatchTooLargeError(len(items), max_items)
    for item in items:
        if isinstance(item, dict) and item.get("source") is None:
            item["source"] = default_source
    try:
        result = Intake(items=len(items), events=_BATCH_ADAPTER.validate_python(items))
    except ValidationError as exc:
        result = _partial(items, exc)
    return result if latest is None else _refuse_future(result, items, latest)


def _refuse_future(result: Intake, items: list[Any], latest: dt.datetime) -> Intake:
    if all(event.occurred_at <= latest for event in result.events):
        return result
    # The events are the items without errors, in order: judge each by its parsed event time
    # (re-parsing the raw string would miss RFC 3339 forms datetime.fromisoformat refuses, such
    # as a lower-case "z", and drop the item without reporting it).
    already = {r.index for r in result.rejected}
    valid = [i for i in range(len(items)) if i not in already]
    refused = [
        i for i, event in zip(valid, result.events, strict=True) if event.occurred_at > latest
    ]
    error = FieldError(
        field="occurred_at",
        message=f"is in the future (later than {latest.isoformat()}, allowing for clock skew)",
        type="future_event_time",
    )
    rejected = [
        *result.rejected,
        *(RejectedItem(index=i, event_id=_event_id(items[i]), errors=[error]) for i in refused),
    ]
    return Intake(
        items=result.items,
        events=[event for event in result.events if event.occurred_at <= latest],
        rejected=sorted(rejected, key=lambda r: r.index or 0),
    )


def _partial(items: list[Any], exc: ValidationError) -> Intake:
    errors_by_index: dict[int, list[FieldError]] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        index = loc[0]
        assert isinstance(index, int)  # a list's errors always start with the item index
        # loc[1] is the union tag (the event type) whenever the type was recognised.
        path = ".".join(str(part) for part in loc[2:])
        if len(loc) == 1 and error["type"].startswith("union_tag"):
            path = "type"
        found = errors_by_index.setdefault(index, [])
        if len(found) < MAX_ERRORS_PER_ITEM:
            message = error["msg"].removeprefix("Value error, ")
            found.append(
                FieldError(field=path[:MAX_FIELD_CHARS], message=message, type=error["type"])
            )
    valid = [item for i, item in enumerate(items) if i not in errors_by_index]
    # The items without errors validate again on their own (cheap: they are known good).
    events = _BATCH_ADAPTER.validate_python(valid) if valid else []
    rejected = [
        RejectedItem(index=i, event_id=_event_id(items[i]), errors=errors)
        for i, errors in sorted(errors_by_index.items())
    ]
    return Intake(items=len(items), events=events, rejected=rejected)


def _event_id(item: Any) -> str | None:
    if isinstance(item, dict):
        value = item.get("event_id")
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return None
