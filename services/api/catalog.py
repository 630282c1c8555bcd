"""Which model versions are in force, and what publishing one more would change.

The models in force ("current models") are the repository's default models
(``engine.default_models()``, version 0) overlaid by the latest published version of each model
id: publishing a model with a repository model's id replaces it, and a fresh install scores with
the repository's models until something is published.

Exactly one current model is the default (``default: true``), the fallback of
``engine.select_model``. :func:`plan_publish` enforces it: publishing a default model demotes the
previous default by publishing it again with ``default: false`` (origin ``default_transfer``), and
a version that would leave no default is refused with :class:`PublishConflictError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from healthscore.engine import HealthModel, PublishedModel, parse_model

Source = Literal["repository", "published"]
Origin = Literal["publish", "rollback", "default_transfer"]


class PublishConflictError(Exception):
    """Publishing would break the single-default rule (HTTP 409)."""


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
    """Repository models overlaid by the latest published version of each id, by model id."""
    current = {
        m.model_id: CurrentModel(m, repository_document(m.model), "repository") for m in repository
    }
    current.update({m.model_id: m for m in latest})
    return dict(sorted(current.items()))


def plan_publish(
    current: Mapping[str, CurrentModel],
    document: dict[str, Any],
    *,
    origin: Origin = "publish",
    rolled_back_from: int | None = None,
    latest_version: int | None = None,
) -> tuple[PlannedVersion, ...]:
    """The versions one publish writes: ``document`` as its model's next version, then any
    demotion of the previous default. Raises ``ModelInvalid`` or :class:`PublishConflictError`.

    ``latest_version`` is the model's latest published version number when known (the database
    row); it defaults to the current model's version.
    """
    model = parse_model(document)
    model_id = model.id
    previous = current.get(model_id)
    if latest_version is None:
        latest_version = previous.version if previous is not None else 0
    planned = [
        PlannedVersion(model_id, latest_version + 1, document, model, origin, rolled_back_from)
    ]
    others = [m for m in current.values() if m.model_id != model_id and m.is_default]
    if model.default:
        for other in others:
            demoted = {**other.document, "default": False}
            planned.append(
                PlannedVersion(
                    other.model_id,
                    other.version + 1,
                    demoted,
                    parse_model(demoted),
                    "default_transfer",
                )
            )
    elif not others:
        raise PublishConflictError(
            f"model {model_id!r} is not the default (default: false) and no other current model"
            " is: exactly one model must be the default. Publish another model with"
            " default: true instead; it takes the default over."
        )
    return tuple(planned)


def after_publish(
    current: Mapping[str, CurrentModel], plan: Sequence[PlannedVersion]
) -> dict[str, CurrentModel]:
    """The current models once ``plan`` is published."""
    after = dict(current)
    for p in plan:
        after[p.model_id] = CurrentModel(p.published, p.document, "published")
    return after


def published_models(current: Mapping[str, CurrentModel]) -> tuple[PublishedModel, ...]:
    return tuple(m.published for m in current.values())
