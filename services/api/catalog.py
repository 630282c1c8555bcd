"""Which model versions are in force, and what publishing one more would change.

The rule is the scorer's (services/scorer/model_registry.py), so the api previews exactly what
the scorers will do: until the first version of any model is published, the repository's models
(``engine.default_models()``, version 0) are in force. From then on the models in force are the
latest published version of every published model id and, when none of them is marked
``default: true``, the repository's default model as the fallback. So exactly one default model
is in force at any time.

Publishing keeps at most one published default: publishing a model with ``default: true``
demotes the previous published default by publishing it again with ``default: false`` (origin
``default_transfer``) in the same publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from healthscore.engine import HealthModel, PublishedModel, parse_model

Source = Literal["repository", "published"]
Origin = Literal["publish", "rollback", "default_transfer"]


@dataclass(frozen=True)
class CurrentModel:
    published: PublishedModel
    document: dict[str, Any]
    source: Source

    @property
    def model_id(self) -> str:
        return self.published.model_id

    @property
    def version(self) -> int:
        return self.published.version

    @property
    def is_default(self) -> bool:
        return bool(self.published.model.default)


@dataclass(frozen=True)
class PlannedVersion:
    model_id: str
    version: int
    document: dict[str, Any]
    model: HealthModel
    origin: Origin
    rolled_back_from: int | None = None

    @property
    def published(self) -> PublishedModel:
        return PublishedModel(self.model_id, self.version, self.model)


def repository_document(model: HealthModel) -> dict[str, Any]:
    """A repository model as a JSON document (what ``GET .../versions/0`` shows)."""
    return model.document()


def current_models(
    repository: Iterable[PublishedModel], latest: Iterable[CurrentModel]
) -> dict[str, CurrentModel]:
    """The models in force, by model id: see the module docstring for the rule."""
    published = {m.model_id: m for m in latest}
    builtin = [CurrentModel(m, repository_document(m.model), "repository") for m in repository]
    if not published:
        current = {m.model_id: m for m in builtin}
    else:
        current = dict(published)
        if not any(m.is_default for m in published.values()):
            current.update(
                {m.model_id: m for m in builtin if m.is_default and m.model_id not in published}
            )
    return dict(sorted(current.items()))


def plan_publish(
    current: Mapping[str, CurrentModel],
    document: dict[str, Any],
    next_version: Callable[[str], int],
    *,
    origin: Origin = "publish",
    rolled_back_from: int | None = None,
) -> tuple[PlannedVersion, ...]:
    """The versions one publish writes: ``document`` as its model's next version, then the
    demotion of the previous published default when ``document`` is a default model.

    ``next_version(model_id)`` numbers the versions. Raises ``ModelInvalid``.
    """
    model = parse_model(document)
    planned = [
        PlannedVersion(model.id, next_version(model.id), document, model, origin, rolled_back_from)
    ]
    if model.default:
        for other in current.values():
            if other.model_id != model.id and other.is_default and other.source == "published":
                demoted = {**other.document, "default": False}
                planned.append(
                    PlannedVersion(
                        other.model_id,
                        next_version(other.model_id),
                        demoted,
                        parse_model(demoted),
                        "default_transfer",
                    )
                )
    return tuple(planned)


def after_publish(
    repository: Iterable[PublishedModel],
    current: Mapping[str, CurrentModel],
    plan: Sequence[PlannedVersion],
) -> dict[str, CurrentModel]:
    """The models in force once ``plan`` is published."""
    published = {m.model_id: m for m in current.values() if m.source == "published"}
    for p in plan:
        published[p.model_id] = CurrentModel(p.published, p.document, "published")
    return current_models(repository, published.values())


def published_models(current: Mapping[str, CurrentModel]) -> tuple[PublishedModel, ...]:
    return tuple(m.published for m in current.values())
