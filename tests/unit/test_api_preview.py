"""Model preview and publish planning (services/api/preview.py, services/api/catalog.py): pure,
with the real engine."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from healthscore.engine import (
    AccountState,
    ModelInvalid,
    PublishedModel,
    apply_event,
    default_models,
    new_state,
    parse_model,
    score,
    select_model,
)
from schemas.events import event_from_obj
from services.api.catalog import (
    CurrentModel,
    after_publish,
    current_models,
    plan_publish,
    published_models,
)
from services.api.preview import PreviewTally, preview_chunk

AS_OF = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def logins_model(model_id: str, *, good: float, default: bool, **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": f"{model_id} model",
        "default": default,
        "categories": [
            {
                "name": "Usage",
                "weight": 1,
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
                        "good": good,
                        "average": 3,
                    }
                ],
            }
        ],
        **extra,
    }


def account(account_id: str, logins: int, segment: str = "smb") -> tuple[str, bytes]:
    state = new_state(account_id)
    apply_event(
        state,
        event_from_obj(
            {
                "event_id": f"{account_id}-profile",
                "account_id": account_id,
                "type": "account",
                "occurred_at": "2026-02-01T00:00:00Z",
                "payload": {"name": account_id.upper(), "segment": segment},
            }
        ),
    )
    for i in range(logins):
        apply_event(
            state,
            event_from_obj(
                {
                    "event_id": f"{account_id}-login-{i}",
                    "account_id": account_id,
                    "type": "usage",
                    "occurred_at": f"2026-02-{10 + i % 15:02d}T09:00:00Z",
                    "payload": {"metric": "login", "user_id": f"u{i}"},
                }
            ),
        )
    return account_id, state.to_bytes()


def current_of(*documents: tuple[dict[str, Any], int]) -> dict[str, CurrentModel]:
    latest = [
        CurrentModel(PublishedModel(d["id"], v, parse_model(d)), d, "published")
        for d, v in documents
    ]
    return current_models([], latest)


def next_version(current: dict[str, CurrentModel]) -> Any:
    return lambda model_id: current[model_id].version + 1 if model_id in current else 1


def run_preview(
    states: list[tuple[str, bytes]], current: dict[str, CurrentModel], draft: dict[str, Any]
) -> PreviewTally:
    plan = plan_publish(current, draft, next_version(current))
    candidate = published_models(after_publish(default_models(), current, plan))
    tally = PreviewTally(limit=10)
    preview_chunk(states, published_models(current), candidate, AS_OF, tally)
    return tally


def test_preview_reports_status_changes_with_old_and_new_scores() -> None:
    current = current_of((logins_model("base", good=10, default=True), 1))
    draft = logins_model("base", good=25, default=True)
    states = [account("a", 20), account("b", 30), account("c", 5)]

    tally = run_preview(states, current, draft)

    assert tally.accounts_scanned == 3
    assert tally.accounts_affected == 3
    assert tally.scores_changed == 1
    assert dict(tally.transitions) == {"green->amber": 1}
    [change] = tally.listed()
    assert (change.account_id, change.name) == ("a", "A")
    assert (change.old_model_version, change.new_model_version) == (1, 2)
    assert (change.old_score, change.old_status) == (100.0, "green")
    assert (change.new_score, change.new_status) == (50.0, "amber")
    assert change.score_delta == -50.0


def test_preview_matches_the_engine_account_by_account() -> None:
    current = current_models(default_models(), [])
    draft = logins_model("smb", good=25, default=False, applies_to={"segments": ["smb"]})
    states = [account(f"acc{i}", i * 3, "smb" if i % 2 else "enterprise") for i in range(10)]

    tally = PreviewTally(limit=100)
    plan = plan_publish(current, draft, next_version(current))
    candidate = published_models(after_publish(default_models(), current, plan))
    preview_chunk(states, published_models(current), candidate, AS_OF, tally)

    expected: dict[str, tuple[str, str]] = {}
    for account_id, blob in states:
        state = AccountState.from_bytes(blob)
        if state.profile.segment != "smb":
            continue
        old = score(state, select_model(published_models(current), state.profile), AS_OF)
        new = score(state, plan[0].published, AS_OF)
        if old.status != new.status:
            expected[account_id] = (old.status, new.status)
    assert tally.accounts_affected == 5  # only the smb accounts move to the new model
    assert {c.account_id: (c.old_status, c.new_status) for c in tally.listed()} == expected
    assert tally.status_changes == len(expected)


def test_accounts_served_by_other_models_are_not_scored() -> None:
    current = current_of(
        (logins_model("base", good=10, default=True), 1),
        (logins_model("ent", good=10, default=False, applies_to={"segments": ["ent"]}), 1),
    )
    draft = logins_model("ent", good=25, default=False, applies_to={"segments": ["ent"]})
    tally = run_preview([account("a", 20, "smb"), account("b", 20, "ent")], current, draft)
    assert tally.accounts_scanned == 2
    assert tally.accounts_affected == 1
    assert [c.account_id for c in tally.listed()] == ["b"]


def test_narrowing_applies_to_moves_accounts_back_to_the_default() -> None:
    current = current_of(
        (logins_model("base", good=25, default=True), 1),
        (logins_model("smb", good=10, default=False, applies_to={"segments": ["smb"]}), 1),
    )
    draft = logins_model("smb", good=10, default=False, applies_to={"segments": ["tiny"]})
    tally = run_preview([account("a", 20, "smb")], current, draft)
    [change] = tally.listed()
    assert (change.old_model_id, change.new_model_id) == ("smb", "base")
    assert (change.old_status, change.new_status) == ("green", "amber")


def test_unreadable_states_are_counted_and_skipped() -> None:
    current = current_of((logins_model("base", good=10, default=True), 1))
    draft = logins_model("base", good=25, default=True)
    tally = run_preview([("bad", b"\x00garbage"), account("a", 20)], current, draft)
    assert (tally.accounts_scanned, tally.accounts_unreadable, tally.status_changes) == (2, 1, 1)


def test_listing_keeps_the_largest_moves_but_counts_all() -> None:
    current = current_of((logins_model("base", good=10, default=True), 1))
    draft = logins_model("base", good=1000, default=True)  # every green account drops
    states = [account(f"a{i:02d}", 10 + i) for i in range(30)]
    tally = PreviewTally(limit=5)
    plan = plan_publish(current, draft, next_version(current))
    preview_chunk(
        states,
        published_models(current),
        published_models(after_publish(default_models(), current, plan)),
        AS_OF,
        tally,
    )
    assert tally.status_changes == 30
    listed = tally.listed()
    assert len(listed) == 5
    assert listed == sorted(listed, key=lambda c: (c.score_delta, c.account_id))


# --- publish planning -------------------------------------------------------------------------


def published(document: dict[str, Any], version: int) -> CurrentModel:
    return CurrentModel(
        PublishedModel(document["id"], version, parse_model(document)), document, "published"
    )


def test_repository_models_are_in_force_until_the_first_publish() -> None:
    repo = default_models()
    assert set(current_models(repo, [])) == {m.model_id for m in repo}
    [builtin_default] = [m.model_id for m in repo if m.model.default]

    # Once anything is published, the published models are in force, plus the repository's
    # default model as the fallback while no published model is the default (the scorer's rule).
    smb = published(logins_model("smb", good=10, default=False), 3)
    current = current_models(repo, [smb])
    assert set(current) == {"smb", builtin_default}
    assert current["smb"].version == 3
    assert current[builtin_default].source == "repository"

    mine = published(logins_model("mine", good=10, default=True), 1)
    assert set(current_models(repo, [smb, mine])) == {"smb", "mine"}


def test_publishing_a_non_default_model_publishes_one_version() -> None:
    current = current_models(default_models(), [])
    plan = plan_publish(current, logins_model("smb", good=10, default=False), next_version(current))
    assert [(p.model_id, p.version, p.origin) for p in plan] == [("smb", 1, "publish")]


def test_a_new_default_demotes_the_previous_published_default() -> None:
    base = logins_model("base", good=10, default=True)
    current = current_models(default_models(), [published(base, 4)])
    plan = plan_publish(current, logins_model("mine", good=10, default=True), next_version(current))
    assert [(p.model_id, p.version, p.origin) for p in plan] == [
        ("mine", 1, "publish"),
        ("base", 5, "default_transfer"),
    ]
    assert plan[1].document == {**base, "default": False}
    after = after_publish(default_models(), current, plan)
    assert [m.model_id for m in after.values() if m.is_default] == ["mine"]


def test_the_first_published_default_replaces_the_repository_default_without_demoting_it() -> None:
    current = current_models(default_models(), [])
    plan = plan_publish(current, logins_model("mine", good=10, default=True), next_version(current))
    assert [(p.model_id, p.origin) for p in plan] == [("mine", "publish")]
    assert list(after_publish(default_models(), current, plan)) == ["mine"]


def test_without_a_published_default_the_repository_default_serves() -> None:
    base = logins_model("base", good=10, default=True)
    current = current_models(default_models(), [published(base, 4)])
    plan = plan_publish(current, {**base, "default": False}, next_version(current))
    after = after_publish(default_models(), current, plan)
    defaults = [m for m in after.values() if m.is_default]
    assert [(m.source, m.version) for m in defaults] == [("repository", 0)]


def test_versions_come_from_the_numbering_function() -> None:
    base = logins_model("base", good=10, default=True)
    current = current_models([], [published(base, 4)])
    plan = plan_publish(current, base, lambda model_id: 8, origin="rollback", rolled_back_from=2)
    assert [(p.version, p.origin, p.rolled_back_from) for p in plan] == [(8, "rollback", 2)]


def test_an_invalid_document_is_not_planned() -> None:
    bad = logins_model("base", good=1, default=True)  # good below average: contradicts direction
    current = current_models(default_models(), [])
    with pytest.raises(ModelInvalid) as info:
        plan_publish(current, bad, next_version(current))
    assert any(e.path == "categories[0].indicators[0].good" for e in info.value.errors)
