"""Health Management through the api against real PostgreSQL and Kafka: draft, validate,
preview, publish, diff, rollback, the single-default rule and Kafka failures."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from healthscore.engine import default_models, parse_model, score, select_model
from healthscore.topics import Topics
from schemas.messages import ModelPublished
from tests.integration.api.testkit import (
    ADMIN,
    NOW,
    Api,
    Seed,
    api_settings,
    free_port,
    running_api,
    seed_accounts,
)
from tests.support import at_least, consume

pytestmark = pytest.mark.integration

YAML = {"Content-Type": "application/yaml", **ADMIN}
JSON = {"Content-Type": "application/json", **ADMIN}


def smb_model(good: float = 10, **extra: Any) -> dict[str, Any]:
    return {
        "id": "smb",
        "name": "Small business",
        "applies_to": {"segments": ["smb"]},
        "priority": 100,
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


async def models_on_topic(bootstrap: str, topics: Topics, count: int) -> list[ModelPublished]:
    records = await consume(bootstrap, topics.models, until=at_least(count), timeout=20)
    assert all(r.key is not None for r in records)
    published = [ModelPublished.model_validate_json(r.value) for r in records]
    assert [r.key for r in records] == [m.model_id.encode() for m in published]
    return published


async def test_draft_validate_preview_publish_diff_rollback(
    api: Api, db: AsyncEngine, kafka_bootstrap: str, topics: Topics
) -> None:
    listed = (await api.client.get("/v1/models", headers=ADMIN)).json()["models"]
    repository = {m.model_id for m in default_models()}
    assert {m["model_id"] for m in listed} == repository
    assert all(m["source"] == "repository" and m["current_version"] == 0 for m in listed)
    assert [m["model_id"] for m in listed if m["default"]] == ["adoption"]

    states = await seed_accounts(
        db,
        [
            Seed("a1", logins=30),
            Seed("a2", logins=8),
            Seed("a3", logins=4),
            Seed("e1", logins=30, segment="enterprise"),
        ],
    )

    # Draft in YAML: saved, valid.
    created = await api.client.post("/v1/models", content=yaml.safe_dump(smb_model()), headers=YAML)
    assert created.status_code == 201, created.text
    assert created.json()["valid"] is True
    assert created.json()["updated_by"] == "bootstrap"
    assert (await api.client.post("/v1/models/smb/draft/validate", headers=ADMIN)).json() == {
        "model_id": "smb",
        "valid": True,
    }

    # Preview: the three smb accounts move from the repository's adoption model to the draft.
    preview = await api.client.post("/v1/models/smb/draft/preview", headers=ADMIN)
    assert preview.status_code == 200, preview.text
    report = preview.json()
    draft_model = parse_model(smb_model())
    expected = {}
    for account_id, state in states.items():
        if state.profile.segment != "smb":
            continue
        old = score(state, select_model(default_models(), state.profile), NOW)
        new = score(state, _published("smb", 1, draft_model), NOW)
        if old.status != new.status:
            expected[account_id] = (old.score, old.status, new.score, new.status)
    assert report["version"] == 1
    assert report["accounts_scanned"] == 4
    assert report["accounts_affected"] == 3
    assert report["status_changes"] == len(expected) > 0
    assert {
        c["account_id"]: (c["old_score"], c["old_status"], c["new_score"], c["new_status"])
        for c in report["changes"]
    } == expected
    assert all(
        c["old_model_id"] == "adoption" and c["new_model_id"] == "smb" for c in report["changes"]
    )

    # Publish: version 1, on the topic, draft cleared.
    published = await api.client.post("/v1/models/smb/draft/publish", headers=ADMIN)
    assert published.status_code == 201, published.text
    assert [(v["model_id"], v["version"], v["origin"]) for v in published.json()["published"]] == [
        ("smb", 1, "publish")
    ]
    [record] = await models_on_topic(kafka_bootstrap, topics, 1)
    assert (record.model_id, record.version, record.published_by) == ("smb", 1, "bootstrap")
    assert record.document == smb_model()
    detail = (await api.client.get("/v1/models/smb", headers=ADMIN)).json()
    assert (detail["source"], detail["current_version"], detail["has_draft"]) == (
        "published",
        1,
        False,
    )

    # A second version from a new draft (JSON this time), then the diff between them.
    assert (
        await api.client.put(
            "/v1/models/smb/draft", content=orjson.dumps(smb_model()), headers=JSON
        )
    ).status_code == 404  # no draft after publishing
    second = await api.client.post(
        "/v1/models", content=orjson.dumps(smb_model(good=25)), headers=JSON
    )
    assert second.status_code == 201
    draft_diff = await api.client.get(
        "/v1/models/smb/diff", params={"from": "current"}, headers=ADMIN
    )
    assert draft_diff.json()["changes"] == [
        {"op": "changed", "path": "categories[0].indicators[0].good", "old": 10, "new": 25}
    ]
    assert (await api.client.post("/v1/models/smb/draft/publish", headers=ADMIN)).status_code == 201
    diff = await api.client.get(
        "/v1/models/smb/diff", params={"from": "1", "to": "2"}, headers=ADMIN
    )
    assert diff.json() == {
        "model_id": "smb",
        "from": "1",
        "to": "2",
        "changes": [
            {"op": "changed", "path": "categories[0].indicators[0].good", "old": 10, "new": 25}
        ],
    }

    # Roll back to version 1: a new version 3 with version 1's document.
    rolled = await api.client.post("/v1/models/smb/rollback", json={"version": 1}, headers=ADMIN)
    assert rolled.status_code == 201, rolled.text
    [version3] = rolled.json()["published"]
    assert (version3["version"], version3["origin"], version3["rolled_back_from"]) == (
        3,
        "rollback",
        1,
    )
    assert (
        await api.client.post("/v1/models/smb/rollback", json={"version": 3}, headers=ADMIN)
    ).status_code == 409  # already current

    on_topic = await models_on_topic(kafka_bootstrap, topics, 3)
    assert [(m.model_id, m.version) for m in on_topic] == [("smb", 1), ("smb", 2), ("smb", 3)]
    assert on_topic[2].document == on_topic[0].document == smb_model()
    assert on_topic[1].document == smb_model(good=25)
    versions = (await api.client.get("/v1/models/smb/versions", headers=ADMIN)).json()
    assert [(v["version"], v["document"]) for v in versions] == [
        (m.version, m.document) for m in reversed(on_topic)
    ]
    one = await api.client.get("/v1/models/smb/versions/2", headers=ADMIN)
    assert one.json()["document"] == smb_model(good=25)
    assert api.registry.get_sample_value("healthscore_api_models_published_total") == 3.0


async def test_every_error_is_listed_with_its_path(api: Api) -> None:
    broken = smb_model()
    broken["categories"][0]["indicators"][0]["average"] = 50  # above good: contradicts direction
    broken["categories"][0]["indicators"][0]["metric"]["kind"] = "vibes"
    broken["bands"] = [{"status": "red", "min": 0, "max": 50}]
    created = await api.client.post("/v1/models", content=yaml.safe_dump(broken), headers=YAML)
    assert created.status_code == 201  # a draft may be invalid while it is being written
    assert created.json()["valid"] is False

    validated = await api.client.post("/v1/models/smb/draft/validate", headers=ADMIN)
    assert validated.status_code == 422
    errors = validated.json()["errors"]
    paths = [e["path"] for e in errors]
    assert len(errors) >= 2, errors
    assert any(p.startswith("categories[0].indicators[0].metric") for p in paths), paths
    assert any(p.startswith("bands") for p in paths), paths
    assert errors == created.json()["errors"]
    for action in ("preview", "publish"):
        answer = await api.client.post(f"/v1/models/smb/draft/{action}", headers=ADMIN)
        assert answer.status_code == 422, action
        assert answer.json()["errors"] == errors

    # Fixing one field at a time: the remaining errors keep their exact paths.
    fixed = copy.deepcopy(broken)
    fixed["categories"][0]["indicators"][0]["metric"]["kind"] = "count"
    del fixed["bands"]
    updated = await api.client.put(
        "/v1/models/smb/draft", content=yaml.safe_dump(fixed), headers=YAML
    )
    assert updated.status_code == 200
    assert [e["path"] for e in updated.json()["errors"]] == ["categories[0].indicators[0].good"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "path"),
    [
        (b"id: [unclosed", "application/yaml", 422, ""),
        (b'{"id": ', "application/json", 422, ""),
        (b"- just\n- a list\n", "application/yaml", 422, ""),
        (b'{"name": "no id"}', "application/json", 422, "id"),
        (b'{"id": "Not A Slug!"}', "application/json", 422, "id"),
        (b"id: smb", "text/plain", 415, None),
    ],
)
async def test_unusable_bodies_are_rejected(
    api: Api, body: bytes, content_type: str, status: int, path: str | None
) -> None:
    answer = await api.client.post(
        "/v1/models", content=body, headers={**ADMIN, "Content-Type": content_type}
    )
    assert answer.status_code == status, answer.text
    if path is not None:
        assert [e["path"] for e in answer.json()["errors"]] == [path]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/v1/models/adoption/versions/99999999999", None),
        ("GET", "/v1/models/adoption/diff?from=99999999999&to=current", None),
        ("POST", "/v1/models/adoption/rollback", b'{"version": 99999999999}'),
        ("GET", "/v1/models/a%00b", None),
        ("GET", "/v1/models/a%00b/draft", None),
        ("POST", "/v1/models", b'{"id": "nul", "name": "a\\u0000b"}'),
    ],
)
async def test_values_the_database_cannot_hold_are_422_not_500(
    api: Api, method: str, url: str, body: bytes | None
) -> None:
    # A version beyond PostgreSQL's integer, a NUL in a path or a JSON string: bad input.
    answer = await api.client.request(method, url, content=body, headers=JSON)
    assert answer.status_code == 422, answer.text
    assert "99999999999" not in answer.text  # the refused value is not echoed


async def test_drafts_conflict_size_limit_and_id_mismatch(api: Api) -> None:
    body = orjson.dumps(smb_model())
    assert (await api.client.post("/v1/models", content=body, headers=JSON)).status_code == 201
    again = await api.client.post("/v1/models", content=body, headers=JSON)
    assert again.status_code == 409
    other = orjson.dumps({**smb_model(), "id": "other"})
    mismatch = await api.client.put("/v1/models/smb/draft", content=other, headers=JSON)
    assert mismatch.status_code == 422
    assert mismatch.json()["errors"][0]["path"] == "id"
    huge = b'{"id": "smb", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert (
        await api.client.put("/v1/models/smb/draft", content=huge, headers=JSON)
    ).status_code == 413
    assert (await api.client.delete("/v1/models/smb/draft", headers=ADMIN)).status_code == 204
    assert (await api.client.get("/v1/models/smb/draft", headers=ADMIN)).status_code == 404
    assert (await api.client.get("/v1/models/nothing", headers=ADMIN)).status_code == 404


async def test_scopes(api: Api, ingest_only_token: str) -> None:
    ingest = {"Authorization": f"Bearer {ingest_only_token}"}
    assert (await api.client.get("/v1/models")).status_code == 401
    wrong = {"Authorization": "Bearer hs_000000000000_" + "A" * 43}
    assert (await api.client.get("/v1/models", headers=wrong)).status_code == 401
    assert (await api.client.get("/v1/models", headers=ingest)).status_code == 403
    assert (await api.client.get("/v1/accounts", headers=ingest)).status_code == 403
    write = await api.client.post(
        "/v1/models",
        content=orjson.dumps(smb_model()),
        headers={**ingest, "Content-Type": "application/json"},
    )
    assert write.status_code == 403
    assert (
        await api.client.get("/v1/models", headers={"X-API-Key": "bootstrap-secret-for-api-tests"})
    ).status_code == 200
    assert (await api.client.get("/healthz")).status_code == 200


async def test_a_new_default_demotes_the_previous_one_in_one_batch(
    api: Api, kafka_bootstrap: str, topics: Topics
) -> None:
    async def publish(document: dict[str, Any]) -> list[tuple[str, int, bool, str]]:
        draft = await api.client.post("/v1/models", content=orjson.dumps(document), headers=JSON)
        assert draft.status_code == 201, draft.text
        answer = await api.client.post(f"/v1/models/{document['id']}/draft/publish", headers=ADMIN)
        assert answer.status_code == 201, answer.text
        return [
            (v["model_id"], v["version"], v["default"], v["origin"])
            for v in answer.json()["published"]
        ]

    async def defaults_in_force() -> list[tuple[str, str]]:
        models = (await api.client.get("/v1/models", headers=ADMIN)).json()["models"]
        return [(m["model_id"], m["source"]) for m in models if m["default"]]

    # The first published default takes over from the repository's default without a demotion.
    mine = smb_model(id="mine", name="Mine", default=True, applies_to={})
    assert await publish(mine) == [("mine", 1, True, "publish")]
    assert await defaults_in_force() == [("mine", "published")]

    # A second default demotes the first, both versions in one record batch.
    yours = smb_model(id="yours", name="Yours", default=True, applies_to={})
    assert (
        await api.client.post("/v1/models", content=orjson.dumps(yours), headers=JSON)
    ).status_code == 201
    preview = (await api.client.post("/v1/models/yours/draft/preview", headers=ADMIN)).json()
    assert preview["also_publishes"] == [
        {"model_id": "mine", "version": 2, "origin": "default_transfer"}
    ]
    assert (await api.client.delete("/v1/models/yours/draft", headers=ADMIN)).status_code == 204
    assert await publish(yours) == [
        ("yours", 1, True, "publish"),
        ("mine", 2, False, "default_transfer"),
    ]
    records = await consume(kafka_bootstrap, topics.models, until=at_least(3), timeout=20)
    assert [(r.key, r.offset) for r in records] == [(b"mine", 0), (b"yours", 1), (b"mine", 2)]
    demoted = ModelPublished.model_validate_json(records[2].value)
    assert demoted.document == {**mine, "default": False}
    assert await defaults_in_force() == [("yours", "published")]

    # With no published default left, the repository's default model serves again.
    assert await publish({**yours, "default": False}) == [("yours", 2, False, "publish")]
    assert await defaults_in_force() == [("adoption", "repository")]


async def test_kafka_failure_publishes_nothing_and_a_retry_succeeds(
    api: Api, database_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    dead = api_settings(
        database_url,
        f"127.0.0.1:{free_port()}",
        topics,
        HEALTHSCORE_API_PUBLISH_TIMEOUT_SECONDS=2,
        HEALTHSCORE_API_READINESS_TIMEOUT_SECONDS=2,
    )
    async with running_api(dead) as broken:
        ready = await broken.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"] == "ok"
        assert ready.json()["checks"]["kafka"] != "ok"
        body = orjson.dumps(smb_model())
        assert (
            await broken.client.post("/v1/models", content=body, headers=JSON)
        ).status_code == 201
        failed = await broken.client.post("/v1/models/smb/draft/publish", headers=ADMIN)
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "5"
        assert broken.registry.get_sample_value("healthscore_api_models_published_total") == 0.0

    detail = (await api.client.get("/v1/models/smb", headers=ADMIN)).json()
    assert (detail["source"], detail["has_draft"], detail["versions"]) == ("draft", True, [])

    # The failed attempt burnt version 1 (a late record of it would be superseded).
    retried = await api.client.post("/v1/models/smb/draft/publish", headers=ADMIN)
    assert retried.status_code == 201
    assert retried.json()["published"][0]["version"] == 2
    [record] = await models_on_topic(kafka_bootstrap, topics, 1)
    assert (record.model_id, record.version) == ("smb", 2)
    assert (await api.client.get("/readyz")).json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "kafka": "ok"},
    }


async def test_repository_models_are_readable_and_can_be_rolled_back_to(
    api: Api, kafka_bootstrap: str, topics: Topics
) -> None:
    [adoption] = [m for m in default_models() if m.model_id == "adoption"]
    version0 = (await api.client.get("/v1/models/adoption/versions/0", headers=ADMIN)).json()
    assert version0["origin"] == "repository"
    assert parse_model(version0["document"]).document() == adoption.model.document()
    changed = {**version0["document"], "priority": 5}
    assert (
        await api.client.post("/v1/models", content=orjson.dumps(changed), headers=JSON)
    ).status_code == 201
    assert (
        await api.client.post("/v1/models/adoption/draft/publish", headers=ADMIN)
    ).status_code == 201
    back = await api.client.post("/v1/models/adoption/rollback", json={"version": 0}, headers=ADMIN)
    assert back.status_code == 201
    assert back.json()["published"][0]["version"] == 2
    on_topic = await models_on_topic(kafka_bootstrap, topics, 2)
    assert on_topic[1].document == version0["document"]


def _published(model_id: str, version: int, model: Any) -> Any:
    from healthscore.engine import PublishedModel

    return PublishedModel(model_id, version, model)
