"""Validation errors of health-model documents, each naming the exact place at fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelError:
    """One problem in a model document; ``path`` looks like ``categories[1].indicators[0].good``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ModelInvalid(ValueError):  # noqa: N818 - the name is part of the engine contract
    """A health-model document failed validation; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[ModelError]) -> None:
        self.errors: list[ModelError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
