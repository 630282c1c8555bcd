"""Settings of the management and read API (``healthscore api``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from healthscore.config import CommonSettings


class ApiSettings(CommonSettings):
    bootstrap_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="HEALTHSCORE_BOOTSTRAP_API_KEY",
        description="first-start API key with every scope (then: healthscore keys create)",
    )
    host: str = Field(
        default="0.0.0.0",
        validation_alias="HEALTHSCORE_API_HOST",
        description="address to listen on",
    )
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias="HEALTHSCORE_API_PORT",
        description="port to listen on",
    )
    # Upper bound on waiting for Kafka to acknowledge a published model version; past it the
    # publish answers 503 and the database transaction rolls back.
    publish_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        validation_alias="HEALTHSCORE_API_PUBLISH_TIMEOUT_SECONDS",
        description="seconds a publish waits for Kafka before 503 and rollback",
    )
    # Health-model documents are small; 1 MiB leaves room for hundreds of indicators.
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        validation_alias="HEALTHSCORE_API_MAX_BODY_BYTES",
        description="larger model documents get 413",
    )
    readiness_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        validation_alias="HEALTHSCORE_API_READINESS_TIMEOUT_SECONDS",
        description="seconds /readyz waits for PostgreSQL and Kafka",
    )
    # How many changed accounts a preview lists (the counts always cover every account).
    preview_list_limit: int = Field(
        default=200,
        ge=1,
        le=10_000,
        validation_alias="HEALTHSCORE_API_PREVIEW_LIST_LIMIT",
        description="changed accounts a preview lists (counts cover all)",
    )
    clock: str = Field(
        default="system",
        validation_alias="HEALTHSCORE_CLOCK",
        description="system, or accelerated:<speed>:<sim origin>:<wall origin>",
    )


def get_settings() -> ApiSettings:
    """Settings read from the environment (called by the CLI, never at import time)."""
    return ApiSettings()
