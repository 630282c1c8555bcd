"""Health-model documents: what parse_model accepts, and every rejection with its exact path."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
import yaml

from healthscore.engine import HealthModel, ModelError, ModelInvalid, default_models, parse_model

VALID: dict[str, Any] = {
    "id": "test-model",
    "name": "Test model",
    "applies_to": {"lifecycle_stages": ["adoption"], "segments": ["smb"]},
    "priority": 5,
    "categories": [
        {
            "name": "Adoption",
            "weight": 60,
            "indicators": [
                {
                    "name": "Logins",
                    "metric": {
                        "kind": "count",
                        "event": "usage",
                        "window": "30d",
                        "where": {"metric": "login"},
                    },
                    "max_points": 10,
                    "direction": "higher_is_better",
                    "good": 20,
                    "average": 5,
                }
            ],
        },
        {
            "name": "Support",
            "weight": 40,
            "indicators": [
                {
                    "name": "Urgent tickets",
                    "metric": {"kind": "open_tickets", "priority": ["high", "urgent"]},
                    "max_points": 5,
                    "direction": "lower_is_better",
                    "good": 0,
                    "average": 2,
                    "missing": "poor",
                }
            ],
        },
    ],
}


def doc(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(VALID)
    out.update(changes)
    return out


def errors_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ModelInvalid) as info:
        parse_model(data)
    assert str(info.value) == "\n".join(
        f"{e.path}: {e.message}" if e.path else e.message for e in info.value.errors
    )
    return [(e.path, e.message) for e in info.value.errors]


def paths_of(data: Any) -> list[str]:
    return [p for p, _ in errors_of(data)]


def test_valid_document_parses_with_defaults() -> None:
    model = parse_model(VALID)
    assert isinstance(model, HealthModel)
    assert [(b.status, b.min, b.max) for b in model.bands] == [
        ("red", 0, 40),
        ("amber", 40, 70),
        ("green", 70, 100),
    ]
    indicator = model.categories[0].indicators[0]
    assert (indicator.shares.good, indicator.shares.average, indicator.shares.poor) == (
        1.0,
        0.5,
        0.0,
    )
    assert indicator.missing == "exclude"
    assert model.default is False


def test_yaml_and_json_text_give_the_same_model() -> None:
    from_yaml = parse_model(yaml.safe_dump(VALID))
    from_json = parse_model(orjson.dumps(VALID).decode())
    assert from_yaml == from_json == parse_model(VALID)


def test_document_round_trips() -> None:
    model = parse_model(VALID)
    again = parse_model(model.document())
    assert again == model
    assert again.document()["categories"][0]["indicators"][0]["metric"]["window"] == "30d"


def test_default_models_are_valid_and_one_is_default() -> None:
    models = default_models()
    assert {m.model_id for m in models} >= {"onboarding", "adoption", "renewal"}
    assert [m.model_id for m in models if m.model.default] == ["adoption"]
    assert all(m.version == 0 for m in models)
    for m in models:
        assert parse_model(m.model.document()) == m.model


def test_bad_yaml_is_reported() -> None:
    [(path, message)] = errors_of("id: [unclosed\nname: x")
    assert path == ""
    assert message.startswith("not valid YAML or JSON at line")


def test_non_mapping_is_rejected() -> None:
    assert errors_of("- a\n- b") == [("", "a health model must be a mapping of fields")]


def test_missing_and_unknown_fields() -> None:
    data = doc(colour="blue")
    del data["name"]
    data["categories"][0]["indicators"][0]["treshold"] = 3
    assert errors_of(data) == [
        ("categories[0].indicators[0].treshold", "is not a known field"),
        ("colour", "is not a known field"),
        ("name", "is required"),
    ]


def test_id_must_be_a_slug() -> None:
    assert errors_of(doc(id="Not a slug")) == [
        ("id", "must be a slug: lowercase letters, digits, '-' or '_' (at most 64)")
    ]


def test_thresholds_must_agree_with_direction() -> None:
    data = doc()
    data["categories"][0]["indicators"][0].update(good=5, average=20)  # higher_is_better
    data["categories"][1]["indicators"][0].update(good=3, average=3)  # lower_is_better
    assert errors_of(data) == [
        (
            "categories[0].indicators[0].good",
            "must be greater than average (20) when direction is higher_is_better",
        ),
        (
            "categories[1].indicators[0].good",
            "must be less than average (3) when direction is lower_is_better",
        ),
    ]


def test_unknown_metric_kind_and_fields() -> None:
    data = doc()
    data["categories"][0]["indicators"][0]["metric"] = {"kind": "median", "event": "usage"}
    data["categories"][1]["indicators"][0]["metric"] = {
        "kind": "sum",
        "event": "usage",
        "field": "user_id",
        "window": "7d",
    }
    [(p1, m1), (p2, m2)] = errors_of(data)
    assert p1 == "categories[0].indicators[0].metric.kind"
    assert m1.startswith("unknown metric kind 'median'; expected one of count, sum, avg")
    assert (p2, m2) == (
        "categories[1].indicators[0].metric.field",
        "'user_id' is not a numeric field of usage events (quantity)",
    )


def test_metric_structure_errors_name_the_field_inside_the_metric() -> None:
    data = doc()
    data["categories"][0]["indicators"][0]["metric"] = {
        "kind": "count",
        "event": "usage",
        "window": "a month",
    }
    data["categories"][1]["indicators"][0]["metric"] = {"event": "usage"}
    assert errors_of(data) == [
        (
            "categories[0].indicators[0].metric.window",
            "must be a number of days such as 7d, 30d or 90d",
        ),
        (
            "categories[1].indicators[0].metric.kind",
            "is required (one of count, sum, avg, distinct, latest, days_since, sentiment, "
            "open_tickets, overdue_invoices, licenses, days_to_renewal, ratio, change)",
        ),
    ]


def test_filters_fields_and_windows_are_checked_against_the_catalogue() -> None:
    data = doc()
    ind = data["categories"][0]["indicators"]
    ind[0]["metric"] = {
        "kind": "count",
        "event": "ticket",
        "window": "400d",
        "where": {"priority": ["high", "critical"], "colour": "red"},
    }
    ind.append(
        {
            "name": "Momentum",
            "metric": {
                "kind": "change",
                "of": {"kind": "distinct", "event": "email", "field": "user_id", "window": "120d"},
            },
            "max_points": 5,
            "good": 0,
            "average": -10,
        }
    )
    ind.append(
        {
            "name": "Stale",
            "metric": {"kind": "change", "of": {"kind": "licenses"}},
            "max_points": 5,
            "good": 0,
            "average": -10,
        }
    )
    assert errors_of(data) == [
        (
            "categories[0].indicators[0].metric.where.colour",
            "ticket events cannot be filtered by 'colour' (status, priority, category)",
        ),
        (
            "categories[0].indicators[0].metric.where.priority[1]",
            "'critical' is not a ticket priority (low, normal, high, urgent)",
        ),
        ("categories[0].indicators[0].metric.window", "must be at most 180d"),
        (
            "categories[0].indicators[1].metric.of.field",
            "'user_id' cannot be counted distinct for email events (direction, event)",
        ),
        ("categories[0].indicators[1].metric.of.window", "must be at most 90d inside a change"),
        (
            "categories[0].indicators[2].metric.of.kind",
            "change needs a windowed metric "
            "(avg, count, distinct, sentiment, sum, or a ratio of them)",
        ),
    ]


def test_ratio_parts_are_validated() -> None:
    data = doc()
    data["categories"][0]["indicators"][0]["metric"] = {
        "kind": "ratio",
        "numerator": {
            "kind": "ratio",
            "numerator": {"kind": "licenses"},
            "denominator": {"kind": "licenses"},
        },
        "denominator": {"kind": "avg", "event": "email", "field": "score", "window": "7d"},
        "scale": 0,
    }
    assert errors_of(data) == [
        ("categories[0].indicators[0].metric.scale", "must be greater than 0"),
    ]
    data["categories"][0]["indicators"][0]["metric"]["scale"] = 100
    assert errors_of(data) == [
        (
            "categories[0].indicators[0].metric.denominator.field",
            "email events have no numeric field",
        ),
        ("categories[0].indicators[0].metric.numerator.kind", "a ratio cannot contain a ratio"),
    ]


def test_zero_total_weight() -> None:
    data = doc()
    for cat in data["categories"]:
        cat["weight"] = 0
    assert errors_of(data) == [
        ("categories", "the total weight of the categories must be greater than 0")
    ]


def test_negative_weight_and_points() -> None:
    data = doc()
    data["categories"][0]["weight"] = -1
    data["categories"][1]["indicators"][0]["max_points"] = 0
    assert errors_of(data) == [
        ("categories[0].weight", "must be at least 0"),
        ("categories[1].indicators[0].max_points", "must be greater than 0"),
    ]


def test_duplicate_names() -> None:
    data = doc()
    data["categories"][1]["name"] = "adoption "
    data["categories"][1]["indicators"][0]["name"] = "Logins"
    assert errors_of(data) == [
        (
            "categories[1].indicators[0].name",
            "duplicate indicator name 'Logins' (also categories[0].indicators[0])",
        ),
        ("categories[1].name", "duplicate category name 'adoption ' (also categories[0])"),
    ]


def test_bands_must_cover_0_to_100() -> None:
    gap = [
        {"status": "red", "min": 0, "max": 30},
        {"status": "amber", "min": 40, "max": 70},
        {"status": "green", "min": 70, "max": 95},
    ]
    assert errors_of(doc(bands=gap)) == [
        ("bands[1].min", "leaves scores from 30 to 40 without a band"),
        ("bands[2].max", "the highest band must end at 100"),
    ]
    overlap = [
        {"status": "red", "min": 10, "max": 50},
        {"status": "amber", "min": 40, "max": 70},
        {"status": "green", "min": 70, "max": 100},
    ]
    assert errors_of(doc(bands=overlap)) == [
        ("bands[0].min", "the lowest band must start at 0"),
        ("bands[1].min", "overlaps bands[0] (which ends at 50)"),
    ]
    upside_down = [
        {"status": "green", "min": 0, "max": 40},
        {"status": "red", "min": 40, "max": 100},
    ]
    assert errors_of(doc(bands=upside_down)) == [
        ("bands", "bands must run from red (lowest scores) through amber to green")
    ]
    assert errors_of(doc(bands=[{"status": "purple", "min": 0, "max": 100}])) == [
        ("bands[0].status", "must be one of red, amber, green")
    ]


def test_custom_bands_are_accepted() -> None:
    bands = [{"status": "red", "min": 0, "max": 50}, {"status": "green", "min": 50, "max": 100}]
    model = parse_model(doc(bands=bands))
    assert [b.status for b in model.bands] == ["red", "green"]


def test_level_shares_must_be_ordered() -> None:
    data = doc()
    data["categories"][0]["indicators"][0]["shares"] = {"good": 0.4, "average": 0.6, "poor": 0.7}
    data["categories"][1]["indicators"][0]["shares"] = {"good": 1.5}
    assert errors_of(data) == [
        ("categories[0].indicators[0].shares.average", "must not exceed shares.good (0.4)"),
        ("categories[0].indicators[0].shares.poor", "must not exceed shares.average (0.6)"),
        ("categories[1].indicators[0].shares.good", "must be at most 1"),
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = doc(
        id="BAD ID",
        bands=[{"status": "red", "min": 0, "max": 100}, {"status": "red", "min": 0, "max": 1}],
    )
    data["categories"][0]["indicators"][0].update(good=1, average=2, missing="ignore")
    data["categories"][1]["indicators"][0]["metric"] = {"kind": "nps"}
    data["categories"][1]["weight"] = "heavy"
    paths = paths_of(data)
    assert paths == [
        "bands[1].status",
        "categories[0].indicators[0].missing",
        "categories[1].indicators[0].metric.kind",
        "categories[1].weight",
        "id",
    ]
    # the threshold error of indicator 0 is found once its missing policy is valid
    data["categories"][0]["indicators"][0]["missing"] = "poor"
    assert "categories[0].indicators[0].good" in paths_of(data)


def test_errors_are_model_errors() -> None:
    with pytest.raises(ModelInvalid) as info:
        parse_model(doc(priority="high"))
    assert info.value.errors == [ModelError("priority", "must be an integer")]


def test_distinct_users_filter_only_by_metric() -> None:
    data = doc()
    data["categories"][0]["indicators"][0]["metric"] = {
        "kind": "distinct",
        "event": "usage",
        "field": "user_id",
        "window": "30d",
        "where": {"metric": "feature_used", "feature": "reports"},
    }
    assert errors_of(data) == [
        (
            "categories[0].indicators[0].metric.where.feature",
            "distinct user_id can only be filtered by metric",
        )
    ]
