"""The event contract: generated files match the models, examples validate, models round-trip."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from schemas import generate
from schemas.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    SURVEY_RANGES,
    encode_event,
    event_from_obj,
    parse_event,
)
from schemas.messages import AlertRaised, ModelPublished, ScoreChanged

EXAMPLES = Path(generate.EXAMPLES_DIR)


def _schema_validator(name: str) -> Draft202012Validator:
    schema = json.loads((generate.JSON_DIR / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def test_generated_files_match_the_models() -> None:
    stale = generate.stale_files()
    assert stale == [], f"run `python -m schemas.generate`: {stale}"


def test_check_mode_reports_nothing_stale() -> None:
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_example_is_valid_for_model_and_json_schema(event_type: str) -> None:
    example = _example(event_type)
    event = event_from_obj(example)
    assert event.type == event_type
    _schema_validator(f"{event_type}_event.schema.json").validate(example)
    _schema_validator("event.schema.json").validate(example)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("score_changed", ScoreChanged),
        ("alert_raised", AlertRaised),
        ("model_published", ModelPublished),
    ],
)
def test_message_examples_are_valid(name: str, model: type[Any]) -> None:
    example = _example(name)
    model.model_validate(example)
    _schema_validator(f"{name}.schema.json").validate(example)


INVALID_CHANGES: list[tuple[str, dict[str, Any], str]] = [
    ("usage", {"extra": 1}, "extra"),
    ("usage", {"account_id": "has space"}, "account_id"),
    ("usage", {"account_id": ""}, "account_id"),
    ("usage", {"event_id": "x" * 129}, "event_id"),
    ("usage", {"occurred_at": "2024-05-01T09:30:00"}, "occurred_at"),
    ("usage", {"occurred_at": 1714557600}, "occurred_at"),
    ("usage", {"payload": {"metric": "login", "quantity": -1}}, "payload.quantity"),
    ("usage", {"payload": {"metric": "login", "quantity": "3"}}, "payload.quantity"),
    ("ticket", {"payload": {"ticket_id": "1", "status": "lost", "priority": "low"}}, "status"),
    ("ticket", {"payload": {**_example("ticket")["payload"], "csat": 6}}, "payload.csat"),
    ("billing", {"payload": {**_example("billing")["payload"], "currency": "usd"}}, "currency"),
    ("email", {"payload": {"message_id": "m", "direction": "inbound", "event": "x"}}, ""),
    ("feedback", {"payload": {"survey": "nps", "score": 11}}, "payload.score"),
    ("feedback", {"payload": {"survey": "csat", "score": 0}}, "payload.score"),
    ("account", {"payload": {"licenses": -1}}, "payload.licenses"),
    ("account", {"payload": {"nickname": "x"}}, "payload.nickname"),
]  # fmt: skip


@pytest.mark.parametrize(("event_type", "change", "field"), INVALID_CHANGES)
def test_invalid_events_are_refused_by_model_and_schema(
    event_type: str, change: dict[str, Any], field: str
) -> None:
    body = {**_example(event_type), **change}
    with pytest.raises(ValidationError) as caught:
        event_from_obj(body)
    paths = [".".join(str(p) for p in e["loc"][1:]) for e in caught.value.errors()]
    assert any(field in path for path in paths), paths
    # The JSON Schema agrees (it has no RFC 3339 offset rule: pydantic enforces that alone).
    if "occurred_at" not in change:
        errors = list(_schema_validator("event.schema.json").iter_errors(body))
        assert errors, f"schema accepted {change}"


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValidationError):
        event_from_obj({**_example("usage"), "type": "nope"})


# --- round trips ----------------------------------------------------------------------------

_label = st.from_regex(r"\A[A-Za-z0-9._:/-]{1,64}\Z")
_ident = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x10FFFF, exclude_categories=["Cs"]).filter(
        lambda c: c != "\x7f"
    ),
    min_size=1,
    max_size=128,
)
_account = st.from_regex(r"\A[A-Za-z0-9._:@-]{1,128}\Z")
_text = st.text(max_size=200)
_time = st.datetimes(
    min_value=dt.datetime(1971, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [
            dt.UTC,
            dt.timezone(dt.timedelta(hours=5, minutes=30)),
            dt.timezone(-dt.timedelta(hours=7)),
        ]
    ),
)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


_feedback = st.sampled_from(sorted(SURVEY_RANGES)).flatmap(
    lambda survey: st.fixed_dictionaries(
        {"survey": st.just(survey), "score": _ints(*SURVEY_RANGES[survey])},
        optional={"comment": _text},
    )
)

PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "usage": st.fixed_dictionaries(
        {"metric": _label},
        optional={
            "feature": _label,
            "user_id": _ident,
            "quantity": st.floats(0, 1e12, allow_nan=False) | _ints(0, 10**12),
        },
    ),
    "ticket": st.fixed_dictionaries(
        {
            "ticket_id": _ident,
            "status": st.sampled_from(["opened", "updated", "resolved", "reopened", "closed"]),
            "priority": st.sampled_from(["low", "normal", "high", "urgent"]),
        },
        optional={
            "category": _label,
            "csat": _ints(1, 5),
            "first_response_seconds": _ints(0, 10**6),
            "text": _text,
        },
    ),
    "billing": st.fixed_dictionaries(
        {
            "invoice_id": _ident,
            "status": st.sampled_from(["issued", "paid", "overdue", "failed", "refunded"]),
            "amount_cents": _ints(0, 10**15),
            "currency": st.from_regex(r"\A[A-Z]{3}\Z"),
        },
        optional={
            "due_at": _time.map(dt.datetime.isoformat),
            "paid_at": _time.map(dt.datetime.isoformat),
        },
    ),
    "email": st.fixed_dictionaries(
        {
            "message_id": _ident,
            "direction": st.sampled_from(["inbound", "outbound"]),
            "event": st.sampled_from(["sent", "delivered", "opened", "replied", "bounced"]),
        },
        optional={"subject": _text, "text": _text},
    ),
    "feedback": _feedback,
    "account": st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(min_size=1, max_size=50),
            "lifecycle_stage": _label,
            "segment": _label,
            "licenses": _ints(0, 10**9),
            "arr_cents": _ints(0, 10**15),
            "renewal_date": st.dates().map(dt.date.isoformat),
            "owner": st.text(min_size=1, max_size=50),
            "parent_account_id": _account,
        },
    ),
}


def event_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Valid event bodies of every type, as a client would send them (JSON-ready dicts)."""
    return st.sampled_from(EVENT_TYPES).flatmap(
        lambda event_type: st.fixed_dictionaries(
            {
                "event_id": _ident,
                "account_id": _account,
                "type": st.just(event_type),
                "occurred_at": _time.map(dt.datetime.isoformat),
                "payload": PAYLOADS[event_type],
            },
            optional={"source": _label},
        )
    )


@settings(max_examples=300, deadline=None)
@given(event_dicts())
def test_event_round_trips_through_json(body: dict[str, Any]) -> None:
    event = event_from_obj(body)
    encoded = encode_event(event)
    again = parse_event(encoded)
    assert again == event
    assert encode_event(again) == encoded
    assert type(event) is EVENT_MODELS[body["type"]]
    # What ingest publishes satisfies the published JSON Schema too.
    _EVENT_SCHEMA.validate(json.loads(encoded))


_EVENT_SCHEMA = _schema_validator("event.schema.json")


_drivers: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    category=_label,
    indicator=_label,
    old_value=_opt(st.floats(-1e6, 1e6)),
    new_value=_opt(st.floats(-1e6, 1e6)),
    old_level=_opt(st.sampled_from(["good", "average", "poor", "missing"])),
    new_level=st.sampled_from(["good", "average", "poor", "missing"]),
    points_delta=st.floats(-100, 100),
    score_impact=st.floats(-100, 100),
)


@settings(max_examples=100, deadline=None)
@given(
    score=st.floats(0, 100),
    old=_opt(st.floats(0, 100)),
    status=st.sampled_from(["red", "amber", "green"]),
    drivers=st.lists(_drivers, max_size=3),
    at=_time,
)
def test_score_changed_round_trips(
    score: float, old: float | None, status: str, drivers: list[dict[str, Any]], at: dt.datetime
) -> None:
    message = ScoreChanged.model_validate(
        {
            **_example("score_changed"),
            "new_score": score,
            "old_score": old,
            "new_status": status,
            "drivers": drivers,
            "scored_at": at,
        }
    )
    assert ScoreChanged.model_validate_json(message.model_dump_json()) == message
    _schema_validator("score_changed.schema.json").validate(json.loads(message.model_dump_json()))
