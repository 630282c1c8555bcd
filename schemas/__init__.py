"""Wire formats: the ingest event contract and the messages Healthscore publishes to Kafka.

The pydantic models here are the source of truth; the JSON Schema files beside them are generated
from the models (``python -m schemas.generate``) and a test fails when they drift.
"""
