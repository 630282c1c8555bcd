"""Event builders and hypothesis strategies shared by the engine tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from healthscore.engine import HealthModel, PublishedModel, parse_model
from schemas.events import Event, event_from_obj

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
AS_OF = T0 + dt.timedelta(days=120, hours=12)

TEXTS = (
    "Thanks, this works great and the team loves it!",
    "The export is broken again and nobody answers. Very frustrating.",
    "Can you send the invoice?",
    "Terrible experience, we are considering other vendors.",
    "Good call today, happy with progress.",
)


def event(
    event_id: str, type_: str, payload: dict[str, Any], at: dt.datetime, account: str = "acme"
) -> Event:
    return event_from_obj(
        {
            "event_id": event_id,
            "account_id": account,
            "type": type_,
            "occurred_at": at.isoformat(),
            "payload": payload,
        }
    )


def published(doc: dict[str, Any] | str, version: int = 1) -> PublishedModel:
    model: HealthModel = parse_model(doc)
    return PublishedModel(model_id=model.id, version=version, model=model)


_payloads: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "usage": st.fixed_dictionaries(
        {"metric": st.sampled_from(["login", "feature_used", "api_call"])},
        optional={
            "feature": st.sampled_from(["reports", "export", "alerts"]),
            "user_id": st.sampled_from([f"u{i}" for i in range(8)]),
            "quantity": st.sampled_from([0, 0.5, 1, 2.25, 10]),
        },
    ),
    "ticket": st.fixed_dictionaries(
        {
            "ticket_id": st.sampled_from(["t1", "t2", "t3", "t4"]),
            "status": st.sampled_from(["opened", "updated", "resolved", "reopened", "closed"]),
            "priority": st.sampled_from(["low", "normal", "high", "urgent"]),
        },
        optional={
            "csat": st.integers(1, 5),
            "first_response_seconds": st.integers(0, 100_000),
            "text": st.sampled_from(TEXTS),
            "category": st.sampled_from(["bug", "billing"]),
        },
    ),
    "billing": st.fixed_dictionaries(
        {
            "invoice_id": st.sampled_from(["i1", "i2", "i3"]),
            "status": st.sampled_from(
                ["issued", "paid", "overdue", "failed", "refunded", "disputed"]
            ),
            "amount_cents": st.integers(0, 10**7),
            "currency": st.just("USD"),
        },
        optional={
            "due_at": st.sampled_from(
                [(T0 + dt.timedelta(days=d)).isoformat() for d in (30, 90, 125)]
            )
        },
    ),
    "email": st.fixed_dictionaries(
        {
            "message_id": st.sampled_from(["m1", "m2"]),
            "direction": st.sampled_from(["inbound", "outbound"]),
            "event": st.sampled_from(["sent", "opened", "replied"]),
        },
        optional={"subject": st.sampled_from(TEXTS), "text": st.sampled_from(TEXTS)},
    ),
    "feedback": st.sampled_from(["nps", "csat", "csm_pulse"]).flatmap(
        lambda survey: st.fixed_dictionaries(
            {
                "survey": st.just(survey),
                "score": st.integers(0, 10) if survey == "nps" else st.integers(1, 5),
            },
            optional={"comment": st.sampled_from(TEXTS)},
        )
    ),
    "account": st.fixed_dictionaries(
        {},
        optional={
            "lifecycle_stage": st.sampled_from(["onboarding", "adoption", "renewal"]),
            "segment": st.sampled_from(["smb", "enterprise"]),
            "licenses": st.integers(0, 20),
            "renewal_date": st.sampled_from(["2024-07-15", "2024-12-31"]),
            "owner": st.sampled_from(["ana", "bo"]),
        },
    ),
}


@st.composite
def events(draw: st.DrawFn, *, max_size: int = 40, span_days: int = 120) -> list[Event]:
    """Events with unique ids inside ``span_days`` after T0 (so inside retention)."""
    count = draw(st.integers(0, max_size))
    out = []
    for i in range(count):
        type_ = draw(st.sampled_from(list(_payloads)))
        at = T0 + dt.timedelta(minutes=draw(st.integers(0, span_days * 24 * 60)))
        out.append(event(f"e{i}", type_, draw(_payloads[type_]), at))
    return out


ALL_METRICS: tuple[dict[str, Any], ...] = (
    {"kind": "count", "event": "usage", "window": "30d", "where": {"metric": "login"}},
    {"kind": "sum", "event": "usage", "field": "quantity", "window": "7d"},
    {"kind": "avg", "event": "ticket", "field": "csat", "window": "90d"},
    {"kind": "distinct", "event": "usage", "field": "user_id", "window": "30d"},
    {"kind": "distinct", "event": "usage", "field": "feature", "window": "14d"},
    {"kind": "latest", "event": "feedback", "field": "score", "where": {"survey": "nps"}},
    {"kind": "days_since", "event": "usage", "where": {"metric": "login"}},
    {"kind": "sentiment", "window": "90d"},
    {"kind": "open_tickets", "priority": ["high", "urgent"]},
    {"kind": "overdue_invoices"},
    {"kind": "licenses"},
    {"kind": "days_to_renewal"},
    {
        "kind": "ratio",
        "numerator": {"kind": "distinct", "event": "usage", "field": "user_id", "window": "30d"},
        "denominator": {"kind": "licenses"},
        "scale": 100,
    },
    {"kind": "change", "of": {"kind": "count", "event": "usage", "window": "30d"}},
)


@st.composite
def indicator_docs(draw: st.DrawFn, name: str) -> dict[str, Any]:
    direction = draw(st.sampled_from(["higher_is_better", "lower_is_better"]))
    a = draw(st.integers(-50, 50))
    b = a + draw(st.integers(1, 50))
    good, average = (b, a) if direction == "higher_is_better" else (a, b)
    poor = draw(st.sampled_from([0.0, 0.1]))
    avg_share = draw(st.sampled_from([0.25, 0.5, 0.75]))
    return {
        "name": name,
        "metric": draw(st.sampled_from(ALL_METRICS)),
        "max_points": draw(st.integers(1, 20)),
        "direction": direction,
        "good": good,
        "average": average,
        "shares": {"good": 1.0, "average": avg_share, "poor": poor},
        "missing": draw(st.sampled_from(["exclude", "poor", "average"])),
    }


@st.composite
def model_docs(draw: st.DrawFn) -> dict[str, Any]:
    categories = []
    n = 0
    for ci in range(draw(st.integers(1, 4))):
        indicators = []
        for _ in range(draw(st.integers(1, 3))):
            indicators.append(draw(indicator_docs(f"i{n}")))
            n += 1
        categories.append(
            {"name": f"c{ci}", "weight": draw(st.integers(1, 50)), "indicators": indicators}
        )
    return {"id": "generated", "name": "Generated", "categories": categories}


def model_of(doc: dict[str, Any]) -> HealthModel:
    return parse_model(doc)
