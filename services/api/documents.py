"""Reading health-model documents from request bodies (JSON or YAML) into JSON mappings.

The api stores and publishes documents as JSON, so a YAML body is converted: dates become ISO
strings, keys become strings. YAML aliases could expand a 1 MiB body into gigabytes when the
document is serialised, so the expanded size is bounded before anything else touches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

# Generous for a model (hundreds of indicators) and cheap to walk.
MAX_NODES = 100_000
MAX_DEPTH = 64

# Model ids are Kafka keys and URL path segments: keep them to a safe alphabet.
MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the engine's slug

# The C loader is an order of magnitude faster when PyYAML was built with libyaml.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


class DocumentRejectedError(Exception):
    """The body is not a usable document; ``problems`` say why (HTTP 422)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class UnsupportedMediaTypeError(Exception):
    """The body's content type is neither JSON nor YAML (HTTP 415)."""


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_document(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The body as a JSON-compatible mapping with a usable ``id``.

    Raises :class:`UnsupportedMediaTypeError` or :class:`DocumentRejectedError`.
    """
    kind = media_type(content_type)
    if kind in JSON_TYPES or kind.endswith("+json"):
        data = _load_json(body)
    elif kind in YAML_TYPES:
        data = _load_yaml(body)
    else:
        raise UnsupportedMediaTypeError(
            f"content type {kind or '(none)'!r}: use application/json or application/yaml"
        )
    if not isinstance(data, dict):
        raise DocumentRejectedError([Problem("", "the document must be a mapping (an object)")])
    _check_size(data)
    try:
        document: dict[str, Any] = orjson.loads(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise DocumentRejectedError([Problem("", f"not representable as JSON: {exc}")]) from None
    check_model_id(document.get("id"))
    return document


def check_model_id(value: object) -> str:
    if not isinstance(value, str) or not MODEL_ID_RE.match(value):
        raise DocumentRejectedError(
            [
                Problem(
                    "id",
                    "must be a slug: 1-64 characters of a-z 0-9 _ -, starting with a-z or 0-9",
                )
            ]
        )
    return value


def _load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DocumentRejectedError([Problem("", f"not valid JSON: {exc}")]) from None


def _load_yaml(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentRejectedError([Problem("", "YAML must be UTF-8")]) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise DocumentRejectedError([Problem("", f"not valid YAML{where}: {problem}")]) from None
    except RecursionError:
        raise DocumentRejectedError([Problem("", "the document is nested too deeply")]) from None


def _check_size(data: Any) -> None:
    """Count nodes as they would be serialised (aliases expanded), stopping at the bounds."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise DocumentRejectedError(
                [Problem("", f"the document has more than {MAX_NODES} nodes")]
            )
        if depth > MAX_DEPTH:
            raise DocumentRejectedError(
                [Problem("", f"the document is nested deeper than {MAX_DEPTH}")]
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
