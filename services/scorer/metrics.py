"""Prometheus metrics of a scorer worker, registered on an injected registry.

No label carries an account id: labels are event types, statuses, DLQ reasons, tick causes and
partition numbers (bounded by the topics' partition count).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Event time -> scored spans late events and accelerated clocks: seconds up to days.
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86_400, 604_800)


class ScorerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_processed = Counter(
            "healthscore_scorer_events_processed_total",
            "Records processed by the scoring agent, by event type (tick for rescore ticks)",
            ["type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "healthscore_scorer_duplicate_events_total",
            "Events already counted in the account's state (redelivery or a repeated event_id),"
            " or older than the state's retention",
            registry=registry,
        )
        self.event_lag = Histogram(
            "healthscore_scorer_event_lag_seconds",
            "Event time (occurred_at) to scored, by the scorer's clock",
            registry=registry,
            buckets=_LAG_BUCKETS,
        )
        self.processing = Histogram(
            "healthscore_scorer_processing_seconds",
            "Record received from Kafka to scored and handed to the outputs",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.score_changes = Counter(
            "healthscore_scorer_score_changes_total",
            "Score changes published to health.scores, by status transition (from none for an"
            " account's first score)",
            ["from_status", "to_status"],
            registry=registry,
        )
        self.dlq_records = Counter(
            "healthscore_scorer_dlq_records_total",
            "Records sent to events.dlq, by reason",
            ["reason"],
            registry=registry,
        )
        self.accounts = Gauge(
            "healthscore_scorer_accounts",
            "Accounts in the partitions this worker owns, by current status",
            ["status"],
            registry=registry,
        )
        self.decay_sweep = Histogram(
            "healthscore_scorer_decay_sweep_seconds",
            "Time of one decay timer run (finding due accounts and sending their ticks)",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.ticks_sent = Counter(
            "healthscore_scorer_ticks_sent_total",
            "Rescore ticks sent to the ticks topic, by cause (time or model)",
            ["cause"],
            registry=registry,
        )
        self.due_accounts = Gauge(
            "healthscore_scorer_due_accounts",
            "Accounts whose rescore is due and whose tick has not been sent yet",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "healthscore_scorer_consumer_lag",
            "Records not yet read, summed over the input topics, by partition owned",
            ["partition"],
            registry=registry,
        )
        self.owned_partitions = Gauge(
            "healthscore_scorer_owned_partitions",
            "Input partitions this worker owns (active)",
            registry=registry,
        )
        self.table_recoveries = Counter(
            "healthscore_scorer_table_recoveries_total",
            "Table recoveries completed (after each rebalance)",
            registry=registry,
        )
        self.index_rebuild = Histogram(
            "healthscore_scorer_index_rebuild_seconds",
            "Time to rebuild the due-index from the recovered table",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.models_loaded = Gauge(
            "healthscore_scorer_models",
            "Health models in effect (published, or the built-in defaults before any publish)",
            registry=registry,
        )
        self.model_records_rejected = Counter(
            "healthscore_scorer_model_records_rejected_total",
            "health.models records that could not be parsed as a model and were ignored",
            registry=registry,
        )
        self.postgres_rows = Counter(
            "healthscore_scorer_postgres_rows_total",
            "Rows written to PostgreSQL, by table",
            ["table"],
            registry=registry,
        )
        self.postgres_flush = Histogram(
            "healthscore_scorer_postgres_flush_seconds",
            "Time of one PostgreSQL batch (one transaction)",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.postgres_errors = Counter(
            "healthscore_scorer_postgres_errors_total",
            "PostgreSQL batches that failed and will be retried",
            registry=registry,
        )
        self.postgres_pending = Gauge(
            "healthscore_scorer_postgres_pending",
            "Records processed but not yet written to PostgreSQL (their offsets are not committed)",
            registry=registry,
        )
