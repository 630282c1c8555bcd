"""A structured diff of two health-model documents.

Paths use the engine's error style (``categories[1].indicators[0].good``), so a diff line and a
validation error about the same field read alike. Lists whose items are all mappings with
distinct ``name`` values (categories, indicators) are matched by name, not by position: inserting
a category reports one added item instead of a cascade of changes, and a pure reordering reports
nothing. Matched items take the path of their index in the new document; removed items the path
of their index in the old one. Other lists are compared position by position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ChangeOp = Literal["added", "removed", "changed"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Change:
    op: ChangeOp
    path: str
    old: Any = None
    new: Any = None


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every added, removed and changed path from ``old`` to ``new``, in document order."""
    changes: list[Change] = []
    _diff(old, new, "", changes)
    return changes


def _key_path(parent: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def _same_scalar(a: Any, b: Any) -> bool:
    # JSON has one number type, but True == 1 in Python: a flag turned into a number is a change.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(old) + [k for k in new if k not in old]:
            child = _key_path(path, str(key))
            if key not in new:
                out.append(Change("removed", child, old=old[key]))
            elif key not in old:
                out.append(Change("added", child, new=new[key]))
            else:
                _diff(old[key], new[key], child, out)
        return
    if _is_list(old) and _is_list(new):
        if _named(old) and _named(new):
            _diff_named(old, new, path, out)
        else:
            _diff_positional(old, new, path, out)
        return
    if not _same_scalar(old, new):
        out.append(Change("changed", path, old=old, new=new))


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _named(items: Sequence[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, Mapping)]
    return (
        len(names) == len(items)
        and all(isinstance(n, str) for n in names)
        and len(set(names)) == len(names)
    )


def _diff_named(old: Sequence[Any], new: Sequence[Any], path: str, out: list[Change]) -> None:
    old_by_name = {item["name"]: (i, item) for i, item in enumerate(old)}
    new_names = {item["name"] for item in new}
    for i, item in enumerate(old):
        if item["name"] not in new_names:
            out.append(Change("removed", f"{path}[{i}]", old=item))
    for i, item in enumerate(new):
        match = old_by_name.get(item["name"])
        if match is None:
            out.append(Change("added", f"{path}[{i}]", new=item))
        else:
            _diff(match[1], item, f"{path}[{i}]", out)


def _diff_positional(old: Sequence[Any], new: Sequence[Any], path: str, out: list[Change]) -> None:
    for i in range(max(len(old), len(new))):
        child = f"{path}[{i}]"
        if i >= len(new):
            out.append(Change("removed", child, old=old[i]))
        elif i >= len(old):
            out.append(Change("added", child, new=new[i]))
        else:
            _diff(old[i], new[i], child, out)
