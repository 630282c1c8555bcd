"""Generic (CRM) webhooks, signed per the Standard Webhooks scheme (https://www.standardwebhooks.com).

The body is ``{"type": "health.alert", "timestamp": ..., "data": {"alert": <AlertRaised>,
"breakdown": {...}, "account_url": ...}}``. Each attempt is signed afresh (receivers reject old
timestamps) with the same ``webhook-id``, which is stable per alert and destination, so the
receiver can drop duplicates of an at-least-once delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from schemas.messages import AlertRaised
from services.alerts.slack import account_link

EVENT_TYPE = "health.alert"


def webhook_id(alert_id: str, destination: str) -> str:
    """Stable per alert and destination: every attempt of one delivery reuses it."""
    digest = hashlib.sha256(f"{alert_id}\x1f{destination}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def body(alert: AlertRaised, breakdown: Mapping[str, Any] | None, *, account_url: str) -> bytes:
    """The JSON body: the alert and the account's score breakdown at the time of the alert."""
    return orjson.dumps(
        {
            "type": EVENT_TYPE,
            "timestamp": alert.raised_at.isoformat(),
            "data": {
                "alert": alert.model_dump(mode="json"),
                "breakdown": dict(breakdown or {}),
                "account_url": account_link(account_url, alert.account_id),
            },
        }
    )


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed by the decoded secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, payload: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, payload),
    }
