"""healthscore.jsonlog: JSON lines; extras kept; secrets and customer text redacted."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from pydantic import SecretStr

from healthscore import jsonlog


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(jsonlog.JsonFormatter())
    logger = logging.getLogger(f"test.jsonlog.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_fields_and_extras(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("published %d events", 3, extra={"event_id": "e1", "account_id": "acme"})
    [line] = lines(stream)
    assert line["level"] == "info"
    assert line["logger"] == logger.name
    assert line["msg"] == "published 3 events"
    assert line["event_id"] == "e1"
    assert line["account_id"] == "acme"
    assert str(line["ts"]).endswith("+00:00")


def test_secrets_and_customer_text_are_redacted(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning(
        "event refused",
        extra={
            "text": "my card was charged twice",
            "comment": "terrible",
            "subject": "Re: cancel",
            "authorization": "Bearer hs_abc",
            "api_key": "hs_abc_def",
            "bootstrap": SecretStr("boot-secret"),
        },
    )
    raw = stream.getvalue()
    for secret in ("charged twice", "terrible", "cancel", "hs_abc", "boot-secret"):
        assert secret not in raw
    [line] = lines(stream)
    assert line["text"] == jsonlog.REDACTED
    assert line["bootstrap"] == "**********"


def test_exceptions_and_odd_values(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"huge": 10**40, "obj": object()})
    [line] = lines(stream)
    assert line["exc_type"] == "ValueError"
    assert "boom" in str(line["exc"])
    assert line["huge"] == str(10**40)


def test_configure_routes_root_and_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        handler = jsonlog.configure("debug", stream=stream)
        logging.getLogger("uvicorn.error").info("started")
        logging.getLogger("httpx").info("POST https://hooks.slack.com/services/T/B/secret")
        assert handler in root.handlers
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    [line] = lines(stream)
    assert line["logger"] == "uvicorn.error"
