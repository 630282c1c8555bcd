"""Settings of a scorer worker (environment variables, see SPEC.md "Configuration")."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from healthscore.config import CommonSettings


class ScorerSettings(CommonSettings):
    # ``system`` or ``accelerated:<speed>:<sim_origin>:<wall_origin>`` (healthscore/clock.py);
    # ``accelerated:0:<origin>:0`` is a fixed clock.
    clock: str = Field(
        default="system",
        validation_alias="HEALTHSCORE_CLOCK",
        description="system, or accelerated:<speed>:<sim origin>:<wall origin>",
    )
    # faust store URL for the per-account tables: rocksdb:// in production (local state survives
    # a restart, only the changelog tail is replayed), memory:// for tests (full replay).
    store_url: str = Field(
        default="rocksdb://",
        validation_alias="HEALTHSCORE_SCORER_STORE",
        description="faust table store: rocksdb:// (production) or memory://",
    )
    # RocksDB files. Two workers on one host need two directories (RocksDB locks its files).
    data_dir: Path | None = Field(
        default=None,
        validation_alias="HEALTHSCORE_SCORER_DATA_DIR",
        description="RocksDB directory (one per worker on a host)",
    )
    # /healthz, /readyz and /metrics of this worker; faust's own web server is disabled.
    http_host: str = Field(
        default="0.0.0.0",
        validation_alias="HEALTHSCORE_SCORER_HOST",
        description="address of /healthz, /readyz and /metrics",
    )
    http_port: int = Field(
        default=6066,
        ge=0,
        le=65535,
        validation_alias="HEALTHSCORE_SCORER_PORT",
        description="port of /healthz, /readyz and /metrics",
    )
    # Standby copies of other workers' partitions shorten fail-over at the cost of reading
    # their changelogs too.
    standby_replicas: int = Field(
        default=1,
        ge=0,
        le=8,
        validation_alias="HEALTHSCORE_SCORER_STANDBY_REPLICAS",
        description="standby copies of other workers' tables (faster fail-over)",
    )
    # Replication factor of the topics faust creates (table changelogs).
    replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        validation_alias="HEALTHSCORE_SCORER_REPLICATION_FACTOR",
        description="replication of the table changelog topics",
    )
    # A worker killed without leaving the group is noticed after this long; its partitions
    # move to the others then (heartbeats go every session/4 seconds, at most 3 s).
    session_timeout_seconds: float = Field(
        default=10.0,
        ge=6,
        le=300,
        validation_alias="HEALTHSCORE_SCORER_SESSION_TIMEOUT",
        description="seconds before a silent worker's partitions move",
    )
    rebalance_timeout_seconds: float = Field(
        default=60.0,
        ge=1,
        le=600,
        validation_alias="HEALTHSCORE_SCORER_REBALANCE_TIMEOUT",
        description="seconds a rebalance may take",
    )
    commit_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        validation_alias="HEALTHSCORE_SCORER_COMMIT_INTERVAL",
        description="seconds between offset commits",
    )
    # PostgreSQL writer: rows are coalesced per account and flushed every `pg_flush_interval`
    # seconds or `pg_batch_size` accounts; at `pg_max_pending` unflushed records the stream
    # waits (backpressure) instead of growing memory or dropping rows.
    pg_batch_size: int = Field(
        default=1000,
        ge=1,
        validation_alias="HEALTHSCORE_SCORER_PG_BATCH",
        description="accounts per PostgreSQL flush at most",
    )
    pg_flush_interval_seconds: float = Field(
        default=0.1,
        gt=0,
        le=10,
        validation_alias="HEALTHSCORE_SCORER_PG_FLUSH_INTERVAL",
        description="seconds between PostgreSQL flushes",
    )
    pg_max_pending: int = Field(
        default=20_000,
        ge=1,
        validation_alias="HEALTHSCORE_SCORER_PG_MAX_PENDING",
        description="unflushed records at which the stream waits",
    )
    # Decay timer: how often it looks for due accounts and how many rescore ticks per second it
    # sends at most, so a midnight when every account's windows slide is spread over time.
    decay_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        validation_alias="HEALTHSCORE_SCORER_DECAY_INTERVAL",
        description="seconds between decay timer runs",
    )
    decay_ticks_per_second: float = Field(
        default=5000.0,
        gt=0,
        validation_alias="HEALTHSCORE_SCORER_DECAY_RATE",
        description="most time/model rescore ticks per second",
    )
    producer_linger_seconds: float = Field(
        default=0.005,
        ge=0,
        le=1,
        validation_alias="HEALTHSCORE_SCORER_PRODUCER_LINGER",
        description="seconds the output producer batches records",
    )
    # Decoded states of the most recently used accounts kept in memory (decoding a state costs
    # more than scoring it); 0 disables the cache.
    state_cache_size: int = Field(
        default=5000,
        ge=0,
        validation_alias="HEALTHSCORE_SCORER_STATE_CACHE",
        description="decoded account states kept in memory (0: off)",
    )

    @property
    def app_id(self) -> str:
        """faust app id = consumer group and changelog topic prefix; includes the topic prefix
        so that deployments (and tests) sharing a broker never share state."""
        return f"{self.topic_prefix}healthscore-scorer"

    @property
    def broker_url(self) -> str:
        return ";".join(
            f"kafka://{server.strip()}"
            for server in self.kafka_bootstrap_servers.split(",")
            if server.strip()
        )

    @property
    def table_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        return Path(".healthscore") / f"scorer-{self.http_port}"


def get_settings() -> ScorerSettings:
    return ScorerSettings()
