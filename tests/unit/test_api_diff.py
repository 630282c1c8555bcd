"""The structured diff of health-model documents (services/api/diff.py)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.api.diff import Change, diff_documents

BASE: dict[str, Any] = {
    "id": "smb",
    "name": "SMB",
    "default": False,
    "bands": {"red": 40, "amber": 70},
    "categories": [
        {
            "name": "usage",
            "weight": 2,
            "indicators": [
                {"name": "logins", "metric": {"kind": "count"}, "good": 10, "average": 5},
                {"name": "seats", "metric": {"kind": "ratio"}, "good": 0.8, "average": 0.5},
            ],
        },
        {"name": "support", "weight": 1, "indicators": []},
    ],
}


def test_identical_documents_have_no_changes() -> None:
    assert diff_documents(BASE, copy.deepcopy(BASE)) == []


def test_changed_scalar_is_reported_with_its_exact_path() -> None:
    new = copy.deepcopy(BASE)
    new["categories"][0]["indicators"][1]["good"] = 0.9
    assert diff_documents(BASE, new) == [
        Change("changed", "categories[0].indicators[1].good", old=0.8, new=0.9)
    ]


def test_added_and_removed_keys() -> None:
    new = copy.deepcopy(BASE)
    del new["default"]
    new["description"] = "for small customers"
    assert diff_documents(BASE, new) == [
        Change("removed", "default", old=False),
        Change("added", "description", new="for small customers"),
    ]


def test_named_items_are_matched_by_name_not_position() -> None:
    new = copy.deepcopy(BASE)
    billing = {"name": "billing", "weight": 1, "indicators": []}
    new["categories"].insert(0, billing)
    new["categories"][1]["weight"] = 3  # "usage", now at index 1
    assert diff_documents(BASE, new) == [
        Change("added", "categories[0]", new=billing),
        Change("changed", "categories[1].weight", old=2, new=3),
    ]


def test_removed_named_item_takes_its_old_index() -> None:
    new = copy.deepcopy(BASE)
    removed = new["categories"][0]["indicators"].pop(0)
    assert diff_documents(BASE, new) == [
        Change("removed", "categories[0].indicators[0]", old=removed)
    ]


def test_reordering_named_items_is_not_a_change() -> None:
    new = copy.deepcopy(BASE)
    new["categories"].reverse()
    assert diff_documents(BASE, new) == []


def test_unnamed_lists_compare_by_position() -> None:
    old = {"applies_to": {"segments": ["smb", "mid"]}}
    new = {"applies_to": {"segments": ["smb", "enterprise", "mid"]}}
    assert diff_documents(old, new) == [
        Change("changed", "applies_to.segments[1]", old="mid", new="enterprise"),
        Change("added", "applies_to.segments[2]", new="mid"),
    ]


def test_bool_and_number_are_different_but_int_and_float_equal() -> None:
    assert diff_documents({"a": 1, "b": 1}, {"a": True, "b": 1.0}) == [
        Change("changed", "a", old=1, new=True)
    ]


def test_keys_that_are_not_identifiers_are_quoted() -> None:
    old = {"filter": {"payload.metric": "login"}}
    new = {"filter": {"payload.metric": "api_call"}}
    assert diff_documents(old, new) == [
        Change("changed", 'filter["payload.metric"]', old="login", new="api_call")
    ]


def test_type_change_between_mapping_and_scalar() -> None:
    assert diff_documents({"m": {"kind": "count"}}, {"m": "count"}) == [
        Change("changed", "m", old={"kind": "count"}, new="count")
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)
documents = st.dictionaries(st.text(max_size=4), json_values, max_size=5)


@given(documents)
def test_a_document_never_differs_from_itself(doc: dict[str, Any]) -> None:
    assert diff_documents(doc, copy.deepcopy(doc)) == []


@given(documents, documents)
def test_every_difference_is_reported(old: dict[str, Any], new: dict[str, Any]) -> None:
    # Empty diff exactly when the documents are equal (named lists aside, which may reorder).
    changes = diff_documents(old, new)
    if not changes:
        assert _canonical(old) == _canonical(new)
    for change in changes:
        assert change.path


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if items and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
            names = [i["name"] for i in items]
            if len(set(names)) == len(names):
                return sorted(items, key=lambda i: i["name"])
        return items
    if isinstance(value, bool):
        return ("bool", value)
    return value
