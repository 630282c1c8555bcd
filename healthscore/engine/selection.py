"""Which model scores an account, and the models that ship with the repository."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

from healthscore.engine.model import HealthModel
from healthscore.engine.profile import Profile
from healthscore.engine.scoring import PublishedModel
from healthscore.engine.validation import parse_model

# A plain directory, not a package: importing a subpackage named default_models would replace
# the default_models function on healthscore.engine.
DEFAULT_MODELS_DIR = "default_models"


@cache
def default_models() -> tuple[PublishedModel, ...]:
    """The repository's models (``default_models/*.yaml``), version 0, sorted by id."""
    files = resources.files("healthscore.engine").joinpath(DEFAULT_MODELS_DIR)
    models = [
        parse_model(entry.read_text(encoding="utf-8"))
        for entry in files.iterdir()
        if entry.name.endswith((".yaml", ".yml"))
    ]
    return tuple(
        PublishedModel(model_id=m.id, version=0, model=m)
        for m in sorted(models, key=lambda m: m.id)
    )


def _fold(value: str | None) -> str | None:
    return value.casefold() if value is not None else None


def matches(model: HealthModel, profile: Profile) -> bool:
    """True when the model's ``applies_to`` names the profile's stage and/or segment.

    A model without any ``applies_to`` condition matches nobody by itself: it serves accounts
    only as the default.
    """
    stages = {s.casefold() for s in model.applies_to.lifecycle_stages}
    segments = {s.casefold() for s in model.applies_to.segments}
    if not stages and not segments:
        return False
    if stages and _fold(profile.lifecycle_stage) not in stages:
        return False
    return not segments or _fold(profile.segment) in segments


def _rank(m: PublishedModel) -> tuple[int, int, int, str]:
    applies = m.model.applies_to
    specificity = bool(applies.lifecycle_stages) + bool(applies.segments)
    # sort ascending: highest priority, then more specific, then newest version, then id
    return (-m.model.priority, -specificity, -m.version, m.model_id)


def select_model(models: Sequence[PublishedModel], profile: Profile) -> PublishedModel:
    """The model for an account: the best ``applies_to`` match, else the default model.

    Matches rank by priority (highest first), then specificity (stage and segment beat one of
    them), then version, then id. With no match the model marked ``default`` serves (highest
    priority if several); with none marked, the built-in default model does.
    """
    matching = [m for m in models if matches(m.model, profile)]
    if matching:
        return min(matching, key=_rank)
    defaults = [m for m in models if m.model.default]
    if defaults:
        return min(defaults, key=_rank)
    builtin = [m for m in default_models() if m.model.default]
    return min(builtin, key=_rank)
