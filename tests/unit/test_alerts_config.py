"""The alerts file: every error at once, named by path; defaults; secrets; routing."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.alerts.config import (
    InvalidConfigError,
    load_config,
    parse_config,
    resolve,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_all_errors_reported_with_paths() -> None:
    text = """
rules:
  - type: red_alert
  - type: sustained_decline
    points: 10
  - type: renewal_at_risk
    within_days: 0
  - type: nonsense
  - type: status_drop
    colour: blue
destinations:
  - name: crm
    type: webhook
    url: https://crm.example.com/hook
routes:
  - rules: [red_alert, no_such_rule]
    destinations: [crm, pager]
"""
    with pytest.raises(InvalidConfigError) as info:
        parse_config(text)
    messages = [str(e) for e in info.value.errors]
    assert "rules[2].within_days: must be > 0" in messages
    assert any(m.startswith("rules[3]: unknown type") for m in messages)
    assert "rules[4].colour: unknown field" in messages
    # Cross-reference errors only come once the shapes are valid; shape errors first.
    assert len(messages) == 3


def test_semantic_errors_all_at_once() -> None:
    text = """
rules:
  - type: red_alert
    supersedes: [ghost]
  - type: red_alert
destinations:
  - name: crm
    type: webhook
    url: https://crm.example.com/hook
  - name: crm
    type: slack
routes:
  - rules: [red_alert, no_such_rule]
    destinations: [crm, pager, slack]
account_url: https://app.example.com/accounts/
"""
    with pytest.raises(InvalidConfigError) as info:
        parse_config(text)
    messages = [str(e) for e in info.value.errors]
    assert messages == [
        "rules[0].supersedes[0]: no other rule named ghost",
        "rules[1].name: duplicate rule name red_alert",
        "destinations[0]: needs exactly one of secret_env, secret_file",
        "destinations[1].name: duplicate destination name crm",
        "destinations[1]: needs exactly one of url, url_env, url_file",
        "routes[0].rules[1]: no rule named no_such_rule",
        "routes[0].destinations[1]: no destination named pager",
        "routes[0].destinations[2]: no destination named slack"
        " (set HEALTHSCORE_SLACK_WEBHOOK_URL to define it)",
        "account_url: must be an http(s) URL with exactly one {account_id}",
    ]


def test_defaults_without_file_and_zero_config_slack() -> None:
    bare = load_config(None, slack_webhook_url=None)
    assert [r.rule_name for r in bare.rules] == [
        "red_alert",
        "status_drop",
        "sustained_decline",
        "renewal_at_risk",
        "onboarding_stalled",
    ]
    assert bare.destinations == ()
    assert bare.destinations_for("red_alert", "red_alert", None, None) == ()

    slack = load_config(None, slack_webhook_url=SecretStr("https://hooks.slack.com/services/T/B/X"))
    assert [d.name for d in slack.destinations] == ["slack"]
    assert slack.destinations_for("red_alert", "red_alert", "smb", "ann") == ("slack",)
    assert slack.destinations_for("status_drop", "status_drop", None, None) == ("slack",)
    assert slack.destinations_for("sustained_decline", "sustained_decline", None, None) == ()


def test_routing_by_rule_segment_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CRM_SECRET", SECRET)
    doc = parse_config(
        {
            "rules": [
                {"type": "red_alert", "name": "red"},
                {"type": "sustained_decline", "points": 10, "within_days": 7},
            ],
            "destinations": [
                {"name": "cs", "type": "slack", "url": "https://hooks.slack.com/x"},
                {
                    "name": "crm",
                    "type": "webhook",
                    "url": "https://crm.example.com/h",
                    "secret_env": "TEST_CRM_SECRET",
                    "max_attempts": 3,
                },
            ],
            "routes": [
                {"rules": ["red"], "destinations": ["cs"]},
                {"segments": ["enterprise"], "destinations": ["crm", "cs"]},
                {"owners": ["ann"], "rules": ["sustained_decline"], "destinations": ["crm"]},
            ],
        }
    )
    config = resolve(doc)
    assert config.destination("crm").secret == SecretStr(SECRET)
    assert config.destination("crm").policy.max_attempts == 3
    assert config.destination("cs").policy.max_attempts == 8
    assert config.destinations_for("red", "red_alert", "smb", "bob") == ("cs",)
    assert config.destinations_for("red", "red_alert", "enterprise", "bob") == ("cs", "crm")
    assert config.destinations_for("sustained_decline", "sustained_decline", "smb", "ann") == (
        "crm",
    )
    assert config.destinations_for("sustained_decline", "sustained_decline", "smb", "bob") == ()


def test_missing_secrets_are_named_not_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.delenv("TEST_ABSENT", raising=False)
    monkeypatch.setenv("TEST_BAD_SECRET", "not-a-secret-value")
    doc = parse_config(
        {
            "destinations": [
                {"name": "a", "type": "webhook", "url_env": "TEST_ABSENT", "secret_env": "X_NONE"},
                {
                    "name": "b",
                    "type": "webhook",
                    "url": "https://b.example.com",
                    "secret_env": "TEST_BAD_SECRET",
                },
                {"name": "c", "type": "slack", "url_file": "/nonexistent/slack-url"},
            ]
        }
    )
    with pytest.raises(InvalidConfigError) as info:
        resolve(doc)
    text = str(info.value)
    assert "destinations[0].url: environment variable TEST_ABSENT (URL) is not set" in text
    assert "destinations[0].secret: environment variable X_NONE (secret) is not set" in text
    assert "destinations[1].secret: must look like whsec_<base64>" in text
    assert "destinations[2].url: cannot read URL file /nonexistent/slack-url" in text
    assert "not-a-secret-value" not in text


def test_secret_and_url_from_files(tmp_path: object) -> None:
    import pathlib

    base = pathlib.Path(str(tmp_path))
    (base / "secret").write_text(SECRET + "\n")
    (base / "url").write_text("https://hooks.slack.com/services/T/B/Y\n")
    config = resolve(
        parse_config(
            {
                "destinations": [
                    {"name": "s", "type": "slack", "url_file": str(base / "url")},
                    {
                        "name": "w",
                        "type": "webhook",
                        "url": "https://w.example.com",
                        "secret_file": str(base / "secret"),
                    },
                ],
                "routes": [{"destinations": ["s", "w"]}],
            }
        )
    )
    assert config.destination("s").url.get_secret_value().endswith("/Y")
    assert config.destination("w").secret == SecretStr(SECRET)
    assert SECRET not in repr(config)


def test_yaml_syntax_error_is_one_error() -> None:
    with pytest.raises(InvalidConfigError) as info:
        parse_config("rules: [\n")
    assert len(info.value.errors) == 1
    assert info.value.errors[0].message.startswith("not valid YAML")
