"""Slack Block Kit messages and Standard Webhooks signatures, checked by independent libraries."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from schemas.messages import AlertRaised
from services.alerts import crm, slack

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "https://hs.example.com/accounts/{account_id}"


def alert(**overrides: Any) -> AlertRaised:
    data: dict[str, Any] = {
        "alert_id": "a-1",
        "rule": "red_alert",
        "rule_name": "red_alert",
        "account_id": "acme/1",
        "profile": {
            "name": "Acme & <Sons>",
            "owner": "ann",
            "renewal_date": "2025-04-01",
            "segment": "smb",
        },
        "old_score": 61.25,
        "new_score": 32.0,
        "old_status": "amber",
        "new_status": "red",
        "drivers": [
            {
                "category": "usage",
                "indicator": "weekly_active_users",
                "old_value": 40,
                "new_value": 3,
                "old_level": "good",
                "new_level": "poor",
                "points_delta": -10,
                "score_impact": -20.5,
            },
            {
                "category": "support",
                "indicator": "open_urgent_tickets",
                "old_value": 0,
                "new_value": 2.5,
                "old_level": "good",
                "new_level": "poor",
                "points_delta": -5,
                "score_impact": -8.75,
            },
        ],
        "model_id": "default",
        "model_version": 2,
        "raised_at": "2025-03-01T10:00:00+00:00",
    }
    data.update(overrides)
    return AlertRaised.model_validate(data)


def validate_blocks(message: dict[str, Any]) -> None:
    blocks = Block.parse_all(message["blocks"])
    assert len(blocks) == len(message["blocks"])
    for block in blocks:
        block.validate_json()  # raises SlackObjectFormationError beyond Slack's limits
    assert len(blocks) <= slack.MAX_BLOCKS
    for raw in message["blocks"]:
        if raw["type"] == "header":
            assert len(raw["text"]["text"]) <= slack.MAX_HEADER
        if raw["type"] == "section" and "text" in raw:
            assert len(raw["text"]["text"]) <= slack.MAX_SECTION


def test_alert_message_has_everything_in_words() -> None:
    message = slack.alert_message(alert(), account_url=URL)
    validate_blocks(message)
    text = str(message)
    assert message["blocks"][0]["text"]["text"].endswith("Acme & <Sons> entered Red")
    assert "61.2 \u2192 32.0" in text
    assert "Amber \u2192 Red" in text
    assert (
        "Usage \u203a weekly active users fell from 40 to 3 (good \u2192 poor), -20.5 points"
        in text
    )
    assert "Support \u203a open urgent tickets rose from 0 to 2.5 (good \u2192 poor)" in text
    assert "ann" in text
    assert "2025-04-01 (in 31 days)" in text
    assert "https://hs.example.com/accounts/acme%2F1" in text
    assert "Acme &amp; &lt;Sons&gt; entered Red" in message["text"]


@pytest.mark.parametrize(
    ("rule", "details", "words"),
    [
        ("status_drop", {}, "dropped from Amber to Red"),
        (
            "sustained_decline",
            {"fall_points": 17.5, "within_days": 14},
            "score fell 17.5 points in 14 days",
        ),
        ("renewal_at_risk", {"days_to_renewal": 31}, "renews in 31 days"),
        ("onboarding_stalled", {"stalled_days": 15}, "onboarding stalled for 15 days"),
        ("expansion_opportunity", {"indicator": "license_utilisation"}, "license utilisation high"),
    ],
)
def test_headlines_per_rule(rule: str, details: dict[str, Any], words: str) -> None:
    message = slack.alert_message(
        alert(rule=rule, rule_name=rule, details=details), account_url=URL
    )
    validate_blocks(message)
    assert words in message["blocks"][0]["text"]["text"]


@settings(max_examples=50, deadline=None)
@given(
    name=st.text(min_size=1, max_size=400),
    owner=st.text(min_size=1, max_size=300),
    indicator=st.text(min_size=1, max_size=300),
    count=st.integers(min_value=2, max_value=60),
)
def test_limits_hold_for_any_text(name: str, owner: str, indicator: str, count: int) -> None:
    big = alert(profile={"name": name, "owner": owner})
    drivers = [d.model_copy(update={"indicator": indicator}) for d in big.drivers] * 3
    big = big.model_copy(update={"drivers": drivers})
    validate_blocks(slack.alert_message(big, account_url=URL))
    validate_blocks(slack.digest_message([big] * count, account_url=URL))


def test_standard_webhooks_signature_verifies_independently() -> None:
    body = crm.body(alert(), {"score": 32.0, "categories": []}, account_url=URL)
    msg_id = crm.webhook_id("a-1", "crm")
    now = int(time.time())
    headers = crm.signed_headers(SECRET, msg_id, now, body)
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "health.alert"
    assert payload["data"]["alert"]["alert_id"] == "a-1"
    assert payload["data"]["account_url"] == "https://hs.example.com/accounts/acme%2F1"
    # A tampered body or another secret fails verification.
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(body, headers)


def test_webhook_id_is_stable_per_alert_and_destination() -> None:
    assert crm.webhook_id("a-1", "crm") == crm.webhook_id("a-1", "crm")
    assert crm.webhook_id("a-1", "crm") != crm.webhook_id("a-1", "crm2")
    assert crm.webhook_id("a-1", "crm") != crm.webhook_id("a-2", "crm")


def test_raised_at_is_timezone_aware_in_body() -> None:
    body = crm.body(alert(), None, account_url=URL)
    assert b'"timestamp":"2025-03-01T10:00:00+00:00"' in body
    assert dt.datetime.fromisoformat("2025-03-01T10:00:00+00:00").tzinfo is not None
