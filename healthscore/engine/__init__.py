"""The pure health engine: model documents, per-account state, metrics, scoring and drivers.

It imports no Kafka, database, HTTP, logging, ``os`` or ``time`` module and never reads a clock:
the scorer, the api's preview and any replay call the same functions with an explicit ``as_of``.
See docs/health-models.md for the model language and the scoring rules.
"""

from __future__ import annotations

from healthscore.engine.catalogue import RETENTION_DAYS, SEEN_EVENT_IDS
from healthscore.engine.drivers import DriverResult, drivers
from healthscore.engine.errors import ModelError, ModelInvalid
from healthscore.engine.model import HealthModel
from healthscore.engine.profile import Profile
from healthscore.engine.rescore import next_rescore_at
from healthscore.engine.scoring import (
    CategoryResult,
    IndicatorResult,
    PublishedModel,
    ScoreCard,
    evaluate_values,
    score,
    score_values,
)
from healthscore.engine.selection import default_models, select_model
from healthscore.engine.state import AccountState, apply_event, new_state
from healthscore.engine.validation import parse_model

__all__ = [
    "RETENTION_DAYS",
    "SEEN_EVENT_IDS",
    "AccountState",
    "CategoryResult",
    "DriverResult",
    "HealthModel",
    "IndicatorResult",
    "ModelError",
    "ModelInvalid",
    "Profile",
    "PublishedModel",
    "ScoreCard",
    "apply_event",
    "default_models",
    "drivers",
    "evaluate_values",
    "new_state",
    "next_rescore_at",
    "parse_model",
    "score",
    "score_values",
    "select_model",
]
