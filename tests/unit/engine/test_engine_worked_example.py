"""The worked example of docs/health-models.md: inputs and expected numbers come from the doc."""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from healthscore.engine import (
    PublishedModel,
    ScoreCard,
    apply_event,
    drivers,
    new_state,
    parse_model,
    score,
)
from schemas.events import event_from_obj

DOC = Path(__file__).resolve().parents[3] / "docs" / "health-models.md"


def _section(text: str, marker: str) -> str:
    start = text.index(f"<!-- worked-example:{marker} -->")
    return text[start:].split("\n", 1)[1]


def _fenced(text: str, marker: str) -> Any:
    match = re.match(r"\s*```yaml\n(.*?)\n```", _section(text, marker), re.S)
    assert match is not None, f"no yaml block after the {marker} marker"
    return yaml.safe_load(match.group(1))


def _table(text: str, marker: str) -> list[dict[str, str]]:
    lines = []
    for line in _section(text, marker).lstrip().splitlines():
        if not line.startswith("|"):
            break
        lines.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, _rule, *rows = lines
    return [dict(zip(header, row, strict=True)) for row in rows]


def _number(cell: str) -> float | None:
    return None if cell == "—" else float(cell)


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cards(doc: str) -> dict[str, ScoreCard]:
    model = parse_model(_fenced(doc, "model"))
    published = PublishedModel(model_id=model.id, version=1, model=model)
    spec = _fenced(doc, "input")
    events = [event_from_obj({**e, "account_id": spec["account_id"]}) for e in spec["events"]]
    random.Random(3).shuffle(events)  # "given in any order"
    state = new_state(spec["account_id"])
    for event in events:
        assert apply_event(state, event)
    return {key: score(state, published, _time(spec[key])) for key in ("as_of", "later")}


def test_indicator_table(doc: str, cards: dict[str, ScoreCard]) -> None:
    expected = _table(doc, "indicators")
    actual = cards["as_of"].indicators
    assert len(expected) == len(actual)
    for row, ind in zip(expected, actual, strict=True):
        assert (ind.category, ind.name) == (row["category"], row["indicator"])
        assert ind.value == _number(row["value"])
        assert ind.level == row["level"]
        assert ind.points == float(row["points"])
        assert ind.max_points == float(row["max points"])
        assert ind.counted == (row["counted"] == "yes")


def test_category_table(doc: str, cards: dict[str, ScoreCard]) -> None:
    expected = _table(doc, "categories")
    actual = cards["as_of"].categories
    assert [c.name for c in actual] == [row["category"] for row in expected]
    for row, cat in zip(expected, actual, strict=True):
        assert cat.weight == float(row["weight"])
        assert cat.earned_points == float(row["earned points"])
        assert cat.possible_points == float(row["possible points"])
        assert cat.score == _number(row["score"])


def test_overall_scores_and_decay(doc: str, cards: dict[str, ScoreCard]) -> None:
    for row in _table(doc, "overall"):
        card = cards[row["as of"]]
        assert (card.score, card.status) == (float(row["score"]), row["status"])


def test_drivers_table(doc: str, cards: dict[str, ScoreCard]) -> None:
    expected = _table(doc, "drivers")
    actual = drivers(cards["as_of"], cards["later"])
    assert len(actual) == len(expected)
    for row, d in zip(expected, actual, strict=True):
        assert d.indicator == row["indicator"]
        assert (d.old_value, d.new_value) == (_number(row["old value"]), _number(row["new value"]))
        assert (d.old_level, d.new_level) == (row["old level"], row["new level"])
        assert d.points_delta == float(row["points delta"])
        assert d.score_impact == float(row["score impact"])
