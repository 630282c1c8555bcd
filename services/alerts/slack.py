"""Slack incoming-webhook messages in Block Kit (https://api.slack.com/block-kit).

:func:`alert_message` builds one alert's message: a header with the account and what happened,
score and status change, owner and renewal date, the top drivers in words, and a link to the
account. :func:`digest_message` folds many alerts into one message when alerts pile up for a
webhook (an alert storm), because Slack accepts about one message per second per webhook.

Slack's documented limits are enforced here: at most 50 blocks, header text at most 150
characters, section text at most 3,000, fields at most 10 of 2,000 each. Account data is
escaped for mrkdwn (``&``, ``<``, ``>``) so a name cannot inject links or mentions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from schemas.messages import AlertRaised, Driver, Status

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_FALLBACK = 4000

STATUS_EMOJI: dict[Status, str] = {
    "red": "\U0001f534",
    "amber": "\U0001f7e0",
    "green": "\U0001f7e2",
}
RULE_EMOJI = {
    "red_alert": "\U0001f6a8",
    "status_drop": "\U0001f4c9",
    "sustained_decline": "\U0001f4c9",
    "renewal_at_risk": "\u23f3",
    "onboarding_stalled": "\U0001f6a7",
    "expansion_opportunity": "\U0001f4c8",
}


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _number(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _score(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.1f}"


def _status(value: Status | None) -> str:
    return "new" if value is None else value.capitalize()


def account_link(account_url: str, account_id: str) -> str:
    return account_url.format(account_id=quote(account_id, safe=""))


def account_name(alert: AlertRaised) -> str:
    return alert.profile.name or alert.account_id


def headline(alert: AlertRaised) -> str:
    """What happened, in a few words (no account name)."""
    d = alert.details
    match alert.rule:
        case "red_alert":
            return "entered Red"
        case "status_drop":
            return f"dropped from {_status(alert.old_status)} to {_status(alert.new_status)}"
        case "sustained_decline":
            return (
                f"score fell {_number(d.get('fall_points'))} points "
                f"in {_number(d.get('within_days'))} days"
            )
        case "renewal_at_risk":
            days = d.get("days_to_renewal")
            return f"renewal at risk: {_status(alert.new_status)}, renews in {days} days"
        case "onboarding_stalled":
            return f"onboarding stalled for {_number(d.get('stalled_days'))} days"
        case "expansion_opportunity":
            return f"expansion opportunity: {_humanize(str(d.get('indicator', 'usage')))} high"
    return str(alert.rule)


def _humanize(name: str) -> str:
    return name.replace("_", " ")


def driver_sentence(driver: Driver) -> str:
    """One driver in words, e.g. 'Usage > license utilisation fell from 0.8 to 0.1 (good to
    poor), -12.5 points'."""
    old, new = driver.old_value, driver.new_value
    if old is None and new is None:
        move = "has no data"
    elif old is None:
        move = f"is {_number(new)}"
    elif new is None:
        move = f"has no data any more (was {_number(old)})"
    elif new < old:
        move = f"fell from {_number(old)} to {_number(new)}"
    elif new > old:
        move = f"rose from {_number(old)} to {_number(new)}"
    else:
        move = f"stayed at {_number(new)}"
    levels = (
        f"{driver.old_level} \u2192 {driver.new_level}"
        if driver.old_level and driver.old_level != driver.new_level
        else driver.new_level
    )
    impact = f"{driver.score_impact:+.1f} points"
    return (
        f"{escape(driver.category.capitalize())} \u203a {escape(_humanize(driver.indicator))} "
        f"{move} ({levels}), {impact}"
    )


def _renewal(alert: AlertRaised, today: dt.date) -> str:
    raw = alert.profile.renewal_date
    if not raw:
        return "not set"
    try:
        days = (dt.date.fromisoformat(raw[:10]) - today).days
    except ValueError:
        return escape(raw)
    when = f"in {days} days" if days >= 0 else f"{-days} days ago"
    return f"{raw[:10]} ({when})"


def fallback_text(alert: AlertRaised) -> str:
    """The notification text (shown where blocks are not)."""
    return _clip(
        f"{STATUS_EMOJI[alert.new_status]} {escape(account_name(alert))} {headline(alert)} "
        f"({_score(alert.old_score)} \u2192 {_score(alert.new_score)})",
        MAX_FALLBACK,
    )


def alert_message(alert: AlertRaised, *, account_url: str, max_drivers: int = 3) -> dict[str, Any]:
    """The Block Kit payload of one alert."""
    link = account_link(account_url, alert.account_id)
    today = alert.raised_at.astimezone(dt.UTC).date()
    header = f"{RULE_EMOJI.get(alert.rule, '')} {account_name(alert)} {headline(alert)}".strip()
    fields = [
        f"*Score*\n{_score(alert.old_score)} \u2192 {_score(alert.new_score)}",
        f"*Status*\n{STATUS_EMOJI[alert.new_status]} {_status(alert.old_status)} \u2192 "
        f"{_status(alert.new_status)}",
        f"*Owner*\n{escape(alert.profile.owner or 'unassigned')}",
        f"*Renewal*\n{_renewal(alert, today)}",
    ]
    drivers = alert.drivers[:max_drivers]
    driver_text = (
        "*Top drivers*\n" + "\n".join(f"\u2022 {driver_sentence(d)}" for d in drivers)
        if drivers
        else "*Top drivers*\nNo indicator moved: the status follows the model or time."
    )
    context = (
        f"Rule *{escape(alert.rule_name)}* \u00b7 model {escape(alert.model_id)} "
        f"v{alert.model_version} \u00b7 {alert.raised_at.isoformat(timespec='minutes')}"
    )
    if alert.profile.segment:
        context += f" \u00b7 segment {escape(alert.profile.segment)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, MAX_HEADER)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _clip(f, MAX_FIELD)} for f in fields],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(driver_text, MAX_SECTION)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(context, MAX_SECTION)}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open account"},
                    "url": link,
                    "action_id": "open_account",
                }
            ],
        },
    ]
    return {"text": fallback_text(alert), "blocks": blocks}


def digest_message(alerts: Sequence[AlertRaised], *, account_url: str) -> dict[str, Any]:
    """One message for many alerts (an alert storm): one line per alert, within Slack's limits."""
    header = f"\U0001f6a8 {len(alerts)} health alerts"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}}
    ]
    # Header + up to 47 lines + a "more" context block stays under 50 blocks.
    room = MAX_BLOCKS - 3
    for alert in alerts[:room]:
        link = account_link(account_url, alert.account_id)
        owner = escape(alert.profile.owner or "unassigned")
        top = f"\n    {driver_sentence(alert.drivers[0])}" if alert.drivers else ""
        line = (
            f"{STATUS_EMOJI[alert.new_status]} *<{link}|{escape(account_name(alert))}>* "
            f"{escape(headline(alert))} ({_score(alert.old_score)} \u2192 "
            f"{_score(alert.new_score)}) \u00b7 owner {owner}{top}"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(line, 3000)}})
    if len(alerts) > room:
        more = f"\u2026 and {len(alerts) - room} more alerts in the alert log."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    names = ", ".join(escape(account_name(a)) for a in alerts[:10])
    text = f"{len(alerts)} health alerts: {names}"
    return {"text": _clip(text, MAX_FALLBACK), "blocks": blocks}
