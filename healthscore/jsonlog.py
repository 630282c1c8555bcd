"""JSON-lines logging for every service.

One line per record: ``ts`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``msg``, then the
record's extras (``logger.info("published", extra={"event_id": ..., "account_id": ...})``) and, for
exceptions, ``exc_type`` and ``exc``. Extras whose names say they hold secrets or customer text
(:data:`REDACTED_KEYS`: ``text``, ``subject``, ``comment``, ``authorization``, ``api_key``, ...)
are written as ``"[redacted]"``, so a careless ``extra=`` cannot leak them; callers still must not
format such values into ``msg``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import traceback
from typing import IO, Any

import orjson

REDACTED = "[redacted]"

# Extra names that never reach a log line with their value (compared lower-case).
REDACTED_KEYS: frozenset[str] = frozenset(
    {
        "text",
        "subject",
        "comment",
        "body",
        "payload",
        "secret",
        "token",
        "password",
        "authorization",
        "api_key",
        "x-api-key",
        "bootstrap_api_key",
        "webhook_secret",
        "webhook_url",
        "slack_webhook_url",
    }
)

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRS: frozenset[str] = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName", "color_message"}  # uvicorn adds color_message

# Libraries whose INFO lines carry URLs with credentials in them (Slack webhook URLs are secrets).
_QUIET_LOGGERS = ("httpx", "httpcore")


def _default(value: object) -> str:
    # SecretStr renders as '**********' through str(); everything else unknown becomes its str().
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key.startswith("_") or key in line:
                continue
            line[key] = REDACTED if key.lower() in REDACTED_KEYS else value
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            line["stack"] = record.stack_info
        try:
            return orjson.dumps(line, default=_default).decode()
        except TypeError:
            # Only reachable with exotic extras (e.g. ints beyond 64 bits): fall back to str().
            return orjson.dumps({k: _safe(v) for k, v in line.items()}).decode()


def _safe(value: object) -> object:
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    return str(value)


def configure(level: int | str = "INFO", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of this process to ``stream`` (stderr) as JSON lines.

    Replaces the root logger's handlers and makes uvicorn's and faust's loggers propagate to it,
    so a service writes one format only. Returns the handler (tests read what it wrote).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faust", "aiokafka"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
