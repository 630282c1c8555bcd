"""Settings of the ingest service (environment variables, see SPEC.md "Configuration")."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from healthscore.config import CommonSettings

MiB = 1024 * 1024


class IngestSettings(CommonSettings):
    # A validation error must not echo the environment: it holds the bootstrap key.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    bootstrap_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="HEALTHSCORE_BOOTSTRAP_API_KEY",
        description="first-start API key with every scope (then: healthscore keys create)",
    )
    host: str = Field(
        default="0.0.0.0",
        validation_alias="HEALTHSCORE_INGEST_HOST",
        description="address to listen on",
    )
    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        validation_alias="HEALTHSCORE_INGEST_PORT",
        description="port to listen on",
    )
    # Enforced while the body is read, before any parsing: 5 MiB holds a full batch of 1,000
    # events with a few KiB of text each.
    max_body_bytes: int = Field(
        default=5 * MiB,
        ge=1024,
        le=256 * MiB,
        validation_alias="HEALTHSCORE_INGEST_MAX_BODY_BYTES",
        description="larger request bodies get 413, checked while reading",
    )
    max_batch_items: int = Field(
        default=1000,
        ge=1,
        le=1000,
        validation_alias="HEALTHSCORE_INGEST_MAX_BATCH_ITEMS",
        description="most events per request (the contract's limit is 1,000)",
    )
    # Token bucket per API key, counted in events (every item of a batch, valid or not).
    rate_limit_per_second: float = Field(
        default=5000.0,
        gt=0,
        validation_alias="HEALTHSCORE_INGEST_RATE_LIMIT",
        description="events/s per API key and process; above it 429",
    )
    rate_limit_burst: int = Field(
        default=10_000,
        ge=1,
        validation_alias="HEALTHSCORE_INGEST_RATE_BURST",
        description="token bucket size per API key, at least one full batch",
    )
    # How long a request waits for Kafka's acknowledgement before answering 503. Below typical
    # client timeouts (30 s) so the client sees our 503 and Retry-After, not its own timeout.
    # Event times later than the ingest clock plus this are refused (clock skew allowance).
    max_future_seconds: float = Field(
        default=3600.0,
        ge=0,
        validation_alias="HEALTHSCORE_INGEST_MAX_FUTURE_SECONDS",
        description="refuse event times later than the clock plus this",
    )
    clock: str = Field(
        default="system",
        validation_alias="HEALTHSCORE_CLOCK",
        description="system, or accelerated:<speed>:<sim origin>:<wall origin>",
    )
    send_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        validation_alias="HEALTHSCORE_INGEST_SEND_TIMEOUT",
        description="seconds to wait for Kafka's ack before answering 503",
    )
    unavailable_retry_after_seconds: int = Field(
        default=5,
        ge=1,
        validation_alias="HEALTHSCORE_INGEST_RETRY_AFTER",
        description="Retry-After seconds on a 503",
    )
    readiness_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        validation_alias="HEALTHSCORE_INGEST_READINESS_TIMEOUT",
        description="seconds /readyz waits for Kafka metadata",
    )
    key_refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias="HEALTHSCORE_API_KEY_REFRESH_SECONDS",
        description="seconds between API key reloads (revocation delay)",
    )
    # An unknown key reloads the key table at most this often.
    key_miss_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        validation_alias="HEALTHSCORE_API_KEY_MISS_REFRESH_SECONDS",
        description="an unknown key triggers a reload at most this often",
    )

    @model_validator(mode="after")
    def _burst_holds_a_full_batch(self) -> Self:
        if self.rate_limit_burst < self.max_batch_items:
            raise ValueError(
                "HEALTHSCORE_INGEST_RATE_BURST must be at least the batch limit "
                f"({self.max_batch_items}), or a full batch could never pass"
            )
        return self


def get_settings() -> IngestSettings:
    return IngestSettings()
