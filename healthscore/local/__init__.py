"""Local infrastructure without Docker: Kafka from Maven jars and a throwaway PostgreSQL.

Used by ``healthscore local``, ``healthscore demo`` and the test fixtures in tests/conftest.py.
"""

from healthscore.local.kafka import KAFKA_VERSION, LocalKafka, resolve_kafka_jars
from healthscore.local.postgres import LocalPostgres

__all__ = ["KAFKA_VERSION", "LocalKafka", "LocalPostgres", "resolve_kafka_jars"]
