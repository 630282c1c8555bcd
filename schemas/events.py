"""The ingest contract: the event envelope and the six event types (SPEC.md, "Events").

Every model forbids unknown fields and bounds every size, so that a validation error names the
exact field at fault and no unbounded value reaches Kafka. The same model validates the HTTP body
at ingest and the Kafka record value in the scorer: a record on ``events.<type>`` is exactly the
JSON of an :data:`Event`, with ``schema_version`` filled in.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

SCHEMA_VERSION: Literal[1] = 1

EventType = Literal["usage", "ticket", "billing", "email", "feedback", "account"]
EVENT_TYPES: tuple[EventType, ...] = ("usage", "ticket", "billing", "email", "feedback", "account")

# Identifier-like strings: bounded, printable, no control characters.
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
AccountId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
ShortText = Annotated[str, Field(max_length=1_000)]
# Free text is scored for sentiment and then dropped; 10k characters covers an email body.
LongText = Annotated[str, Field(max_length=10_000)]
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: object) -> object:
    # Lax datetime parsing would also take Unix timestamps (numbers or digit strings); the
    # contract is RFC 3339 with an offset, so anything but such a string (or a datetime built
    # in Python) is refused before parsing.
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2024-05-01T10:00:00Z")


# Event time comes as RFC 3339 strings in JSON; an offset is mandatory.
EventTime = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_rfc3339)]

TicketStatus = Literal["opened", "updated", "resolved", "reopened", "closed"]
TicketPriority = Literal["low", "normal", "high", "urgent"]
InvoiceStatus = Literal["issued", "paid", "overdue", "failed", "refunded", "disputed"]
EmailDirection = Literal["inbound", "outbound"]
EmailAction = Literal[
    "sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed"
]
Survey = Literal["nps", "csat", "ces", "csm_pulse"]

SURVEY_RANGES: dict[str, tuple[int, int]] = {
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": (1, 7),
    "csm_pulse": (1, 5),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class UsagePayload(_Strict):
    metric: Label
    feature: Label | None = None
    user_id: Identifier | None = None
    quantity: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] = 1.0


class TicketPayload(_Strict):
    ticket_id: Identifier
    status: TicketStatus
    priority: TicketPriority
    category: Label | None = None
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    first_response_seconds: Annotated[int, Field(ge=0, le=10 * 365 * 86_400)] | None = None
    text: LongText | None = None


class BillingPayload(_Strict):
    invoice_id: Identifier
    status: InvoiceStatus
    amount_cents: Annotated[int, Field(ge=0, le=10**15)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    due_at: EventTime | None = None
    paid_at: EventTime | None = None


class EmailPayload(_Strict):
    message_id: Identifier
    direction: EmailDirection
    event: EmailAction
    subject: ShortText | None = None
    text: LongText | None = None


class FeedbackPayload(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"survey": {"const": survey}}},
                    "then": {"properties": {"score": {"minimum": low, "maximum": high}}},
                }
                for survey, (low, high) in SURVEY_RANGES.items()
            ]
        }
    )

    survey: Survey
    score: int
    comment: LongText | None = None

    @field_validator("score")
    @classmethod
    def _score_in_survey_range(cls, score: int, info: ValidationInfo) -> int:
        # A field validator (not a model validator) so the error names payload.score.
        survey = info.data.get("survey")
        if survey is None:  # the survey itself was invalid and is reported on its own
            return score
        low, high = SURVEY_RANGES[survey]
        if not low <= score <= high:
            raise ValueError(f"{survey} scores run from {low} to {high}")
        return score


class AccountPayload(_Strict):
    """A partial profile update: fields left out keep their value; last write wins by event time."""

    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    lifecycle_stage: Label | None = None
    segment: Label | None = None
    licenses: Annotated[int, Field(ge=0, le=10**9)] | None = None
    arr_cents: Annotated[int, Field(ge=0, le=10**15)] | None = None
    renewal_date: Annotated[dt.date, Field(strict=False)] | None = None
    owner: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    parent_account_id: AccountId | None = None


class _Envelope(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    account_id: AccountId
    occurred_at: EventTime
    source: Label | None = None


class UsageEvent(_Envelope):
    type: Literal["usage"]
    payload: UsagePayload


class TicketEvent(_Envelope):
    type: Literal["ticket"]
    payload: TicketPayload


class BillingEvent(_Envelope):
    type: Literal["billing"]
    payload: BillingPayload


class EmailEvent(_Envelope):
    type: Literal["email"]
    payload: EmailPayload


class FeedbackEvent(_Envelope):
    type: Literal["feedback"]
    payload: FeedbackPayload


class AccountEvent(_Envelope):
    type: Literal["account"]
    payload: AccountPayload


Event = Annotated[
    UsageEvent | TicketEvent | BillingEvent | EmailEvent | FeedbackEvent | AccountEvent,
    Field(discriminator="type"),
]

EVENT_MODELS: dict[EventType, type[_Envelope]] = {
    "usage": UsageEvent,
    "ticket": TicketEvent,
    "billing": BillingEvent,
    "email": EmailEvent,
    "feedback": FeedbackEvent,
    "account": AccountEvent,
}

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Event:
    """Validate one event from JSON; raises ``pydantic.ValidationError`` naming each bad field."""
    return EVENT_ADAPTER.validate_json(raw)


def event_from_obj(obj: object) -> Event:
    """Validate one already-decoded JSON object (an item of an ingest batch)."""
    # Python-mode validation in strict mode would refuse RFC 3339 strings for datetimes; the
    # EventTime fields opt out of strictness one by one, so strict mode elsewhere still refuses
    # "5" for an integer.
    return EVENT_ADAPTER.validate_python(obj)


def encode_event(event: Event) -> bytes:
    """The Kafka record value for an event."""
    return event.model_dump_json(exclude_none=True).encode()
