"""Settings of the alerts service (environment, pydantic-settings). Built by :func:`get_settings`,
never at import time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from healthscore.config import CommonSettings


class AlertsSettings(CommonSettings):
    alerts_file: str | None = Field(
        default=None,
        validation_alias="HEALTHSCORE_ALERTS_FILE",
        description="rules/destinations/routes file (YAML or JSON); unset: the default rules",
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None,
        validation_alias="HEALTHSCORE_SLACK_WEBHOOK_URL",
        description="zero-config Slack route for red_alert and status_drop",
    )
    allow_private_webhooks: bool = Field(
        default=False,
        validation_alias="HEALTHSCORE_ALLOW_PRIVATE_WEBHOOKS",
        description="allow http and private/loopback webhook URLs (tests, demos)",
    )
    group_id: str = Field(
        default="healthscore-alerts",
        validation_alias="HEALTHSCORE_ALERTS_GROUP_ID",
        description="consumer group on health.scores",
    )
    # earliest: a new consumer group evaluates the retained history of health.scores rather than
    # missing alerts raised before its first start.
    offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        validation_alias="HEALTHSCORE_ALERTS_OFFSET_RESET",
        description="a new consumer group starts at the earliest or latest record",
    )
    host: str = Field(
        default="0.0.0.0",
        validation_alias="HEALTHSCORE_ALERTS_HOST",
        description="address of /healthz, /readyz and /metrics",
    )
    port: int = Field(
        default=8003,
        ge=0,
        le=65535,
        validation_alias="HEALTHSCORE_ALERTS_PORT",
        description="port of /healthz, /readyz and /metrics",
    )
    clock: str = Field(
        default="system",
        validation_alias="HEALTHSCORE_CLOCK",
        description="system, or accelerated:<speed>:<sim origin>:<wall origin>",
    )
    poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        validation_alias="HEALTHSCORE_ALERTS_POLL_INTERVAL",
        description="seconds between delivery workers' polls of the outbox",
    )
    sweep_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        validation_alias="HEALTHSCORE_ALERTS_SWEEP_INTERVAL",
        description="seconds between time-driven rule sweeps",
    )


def get_settings() -> AlertsSettings:
    return AlertsSettings()
