"""The scorer's table values, ticks and input decoding."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scorer.decoding import Rejected, Tick, decode_event, decode_tick
from services.scorer.records import (
    FORMAT,
    CardRecord,
    RecordFormatError,
    RecordHeader,
    decode_account,
    decode_header,
    encode_account,
    encode_tick,
)

headers = st.builds(
    RecordHeader,
    revision=st.integers(0, 2**63),
    next_rescore_epoch=st.one_of(st.just(math.nan), st.floats(0, 4e9)),
    last_score=st.one_of(st.none(), st.floats(0, 100)),
    last_status=st.sampled_from([None, "red", "amber", "green"]),
    model_id=st.one_of(st.none(), st.text(min_size=1, max_size=64)),
    model_version=st.integers(0, 2**31 - 1),
    models_fingerprint=st.binary(min_size=8, max_size=8),
)


@given(headers, st.binary(max_size=2000))
def test_account_record_round_trip(header: RecordHeader, state: bytes) -> None:
    decoded = decode_account(encode_account(header, state))
    assert decoded.state == state
    got = decoded.header
    if math.isnan(header.next_rescore_epoch):
        assert math.isnan(got.next_rescore_epoch)
        assert got.next_rescore_at is None
    else:
        assert got.next_rescore_epoch == header.next_rescore_epoch
    assert (got.revision, got.last_score, got.last_status) == (
        header.revision,
        header.last_score,
        header.last_status,
    )
    assert (got.model_id, got.model_version, got.models_fingerprint) == (
        header.model_id,
        header.model_version,
        header.models_fingerprint,
    )
    again, start = decode_header(encode_account(header, state))
    assert (again.revision, again.model_id, start) == (got.revision, got.model_id, start)


def test_unknown_format_and_short_values_are_refused() -> None:
    header = RecordHeader(1, math.nan, None, None, None, 0, b"\0" * 8)
    value = bytearray(encode_account(header, b"{}"))
    value[0] = FORMAT + 1
    with pytest.raises(RecordFormatError):
        decode_account(bytes(value))
    with pytest.raises(RecordFormatError):
        decode_header(b"\x01\x02")
    with pytest.raises(RecordFormatError):
        CardRecord.from_bytes(b"")


@given(st.one_of(st.none(), st.text(min_size=1, max_size=128)), st.binary(max_size=500))
def test_card_round_trip(event_id: str | None, payload: bytes) -> None:
    card = CardRecord.from_bytes(CardRecord(event_id, payload).to_bytes())
    assert card == CardRecord(event_id, payload)


def _usage(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": "e1",
        "account_id": "acct-1",
        "type": "usage",
        "occurred_at": "2024-06-01T00:00:00Z",
        "payload": {"metric": "login"},
    }
    event.update(changes)
    return event


def test_decode_event_accepts_what_ingest_produces() -> None:
    event = decode_event(b"acct-1", orjson.dumps(_usage()), "usage")
    assert not isinstance(event, Rejected)
    assert event.event_id == "e1"


@pytest.mark.parametrize(
    ("key", "value", "topic_type", "reason"),
    [
        (b"acct-1", b"\xff\xfe not json", "usage", "decode_error"),
        (b"acct-1", None, "usage", "decode_error"),
        (
            b"acct-1",
            orjson.dumps(_usage(payload={"metric": "login", "quantity": -1})),
            "usage",
            "validation_error",
        ),
        (b"acct-1", orjson.dumps(_usage(extra=1)), "usage", "validation_error"),
        (b"acct-2", orjson.dumps(_usage()), "usage", "key_mismatch"),
        (b"acct-1", orjson.dumps(_usage()), "ticket", "topic_mismatch"),
    ],
)
def test_decode_event_rejections(
    key: bytes, value: bytes | None, topic_type: str, reason: str
) -> None:
    rejected = decode_event(key, value, topic_type)  # type: ignore[arg-type]
    assert isinstance(rejected, Rejected)
    assert rejected.reason == reason


def test_rejection_details_name_fields_not_values() -> None:
    secret = "my very private ticket text"
    event = _usage(payload={"metric": "login", "quantity": "lots", "note": secret})
    rejected = decode_event(b"acct-1", orjson.dumps(event), "usage")
    assert isinstance(rejected, Rejected)
    assert "payload.quantity" in rejected.detail
    assert secret not in rejected.detail
    assert "lots" not in rejected.detail


def test_ticks() -> None:
    assert decode_tick(b"acct-1", encode_tick("time")) == Tick("acct-1", "time")
    assert decode_tick(b"acct-1", encode_tick("model")) == Tick("acct-1", "model")
    assert isinstance(decode_tick(b"acct-1", b'{"tick": "later"}'), Rejected)
    assert isinstance(decode_tick(None, encode_tick("time")), Rejected)
    assert isinstance(decode_tick(b"acct-1", b"[1]"), Rejected)
