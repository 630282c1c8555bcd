"""Reading model documents from request bodies (services/api/documents.py)."""

from __future__ import annotations

import pytest

from services.api.documents import (
    DocumentRejectedError,
    UnsupportedMediaTypeError,
    parse_document,
)


def test_yaml_becomes_json_compatible() -> None:
    doc = parse_document(b"id: smb\nsince: 2026-01-01\n3: three\n", "application/yaml")
    assert doc == {"id": "smb", "since": "2026-01-01", "3": "three"}


def test_json_with_charset_parameter() -> None:
    assert parse_document(b'{"id": "a"}', "application/json; charset=utf-8") == {"id": "a"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_other_media_types_are_refused(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        parse_document(b'{"id": "a"}', content_type)


def test_alias_bombs_are_refused_before_expansion() -> None:
    lines = ["a: &a [" + ",".join(["x"] * 10) + "]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(DocumentRejectedError, match="nodes"):
        parse_document("\n".join(lines).encode(), "application/yaml")


@pytest.mark.parametrize(
    ("body", "content_type", "path"),
    [
        (b"[" * 5000, "application/json", ""),
        (b"[" * 5000, "application/yaml", ""),
        (b"\xff\xfe", "application/yaml", ""),
        (b"id: [", "application/yaml", ""),
        (b"42", "application/json", ""),
        (b'{"id": 7}', "application/json", "id"),
        (b'{"id": "UPPER"}', "application/json", "id"),
        (b'{"id": "' + b"a" * 65 + b'"}', "application/json", "id"),
    ],
)
def test_unusable_bodies_name_the_problem(body: bytes, content_type: str, path: str) -> None:
    with pytest.raises(DocumentRejectedError) as info:
        parse_document(body, content_type)
    assert [p.path for p in info.value.problems] == [path]
