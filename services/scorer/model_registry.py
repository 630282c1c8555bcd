"""The health models in effect on a worker, fed from the compacted health.models topic.

Rule (documented in docs/architecture.md): until the first version is published, the built-in
default models apply. From then on the effective set is the latest published version of every
published model id; if no published model is marked ``default``, the built-in default model stays
in the set as the fallback, so every account always has a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from healthscore.engine import (
    Profile,
    PublishedModel,
    default_models,
    parse_model,
    select_model,
)
from schemas.messages import ModelPublished
from services.scorer.records import MODEL_FINGERPRINT_SIZE


class ModelRegistry:
    def __init__(self, builtins: Sequence[PublishedModel] | None = None) -> None:
        self._builtins = tuple(default_models() if builtins is None else builtins)
        self._published: dict[str, PublishedModel] = {}
        self._selected: dict[tuple[str | None, str | None], PublishedModel] = {}
        self._refresh()

    @property
    def models(self) -> tuple[PublishedModel, ...]:
        return self._models

    @property
    def fingerprint(self) -> bytes:
        """Identifies the effective model set; stored with each account's score so that accounts
        scored before a publish are found stale after a restart."""
        return self._fingerprint

    def apply(self, message: ModelPublished) -> bool:
        """Take a health.models record; True when the effective model set changed.

        Raises ``healthscore.engine.ModelInvalid`` when the document is not a valid model.
        """
        current = self._published.get(message.model_id)
        if current is not None and current.version >= message.version:
            return False
        model = parse_model(message.document)
        self._published[message.model_id] = PublishedModel(
            model_id=message.model_id, version=message.version, model=model
        )
        self._refresh()
        return True

    def select(self, profile: Profile) -> PublishedModel:
        # select_model matches on lifecycle stage and segment only: cache per pair.
        key = (profile.lifecycle_stage, profile.segment)
        found = self._selected.get(key)
        if found is None:
            found = self._selected[key] = select_model(self._models, profile)
        return found

    def _refresh(self) -> None:
        if not self._published:
            models = self._builtins
        else:
            published = tuple(sorted(self._published.values(), key=lambda m: m.model_id))
            if any(m.model.default for m in published):
                models = published
            else:
                fallback = tuple(
                    m
                    for m in self._builtins
                    if m.model.default and m.model_id not in self._published
                )
                models = published + fallback
        self._models = models
        self._selected = {}
        digest = hashlib.blake2b(digest_size=MODEL_FINGERPRINT_SIZE)
        for model in sorted(models, key=lambda m: m.model_id):
            digest.update(f"{model.model_id}\x00{model.version}\x00".encode())
        self._fingerprint = digest.digest()
