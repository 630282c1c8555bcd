"""Settings shared by every service. Each service has its own frozen settings class that extends
:class:`CommonSettings`, obtained through a function so tests can build their own."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthscore.topics import Topics


class CommonSettings(BaseSettings):
    # env_ignore_empty: an empty variable (common in Helm and compose templates) means "unset",
    # never an empty URL or secret.
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Kafka bootstrap servers, comma-separated host:port",
    )
    database_url: str = Field(
        default="postgresql+asyncpg://healthscore@127.0.0.1:5432/healthscore",
        validation_alias="DATABASE_URL",
        description="postgresql+asyncpg://user:password@host:port/database",
    )
    topic_prefix: str = Field(
        default="",
        validation_alias="HEALTHSCORE_TOPIC_PREFIX",
        description="prefix of every topic name (several installations on one cluster)",
    )
    partitions: int = Field(
        default=6,
        ge=1,
        le=1024,
        validation_alias="HEALTHSCORE_PARTITIONS",
        description="event topics' partitions: fixed at creation, the most useful scorer workers",
    )
    log_level: str = Field(
        default="INFO",
        validation_alias="HEALTHSCORE_LOG_LEVEL",
        description="DEBUG, INFO, WARNING or ERROR (JSON lines on stderr)",
    )

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
