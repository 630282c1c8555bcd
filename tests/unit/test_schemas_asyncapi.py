"""schemas/asyncapi.yaml is a valid AsyncAPI 3.0 document that describes every topic we use.

The AsyncAPI 3.0 JSON Schema comes from the npm package ``@asyncapi/specs`` (pinned below). The
first run on a machine fetches it into ``.cache/asyncapi/`` with npm; later runs read the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from healthscore.topics import Topics
from schemas import generate
from schemas.messages import DLQ_HEADERS

SPECS_PACKAGE = "@asyncapi/specs@6.11.1"
REPO = Path(__file__).resolve().parents[2]
CACHED_SCHEMA = REPO / ".cache" / "asyncapi" / "specs-6.11.1-asyncapi-3.0.0.json"


def asyncapi_schema() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 JSON Schema (draft-07, every definition embedded by ``$id``)."""
    if not CACHED_SCHEMA.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed once to fetch the AsyncAPI JSON Schema (@asyncapi/specs)"
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--silent",
                 SPECS_PACKAGE],
                check=True, timeout=300, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            source = Path(tmp, "node_modules", "@asyncapi", "specs", "schemas", "3.0.0.json")
            CACHED_SCHEMA.parent.mkdir(parents=True, exist_ok=True)
            partial = CACHED_SCHEMA.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(source, partial)
            partial.replace(CACHED_SCHEMA)  # atomic: a concurrent run never reads half a file
    schema: dict[str, Any] = json.loads(CACHED_SCHEMA.read_text())
    return schema


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(generate.ASYNCAPI_PATH.read_text())
    return data


def test_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    schema = asyncapi_schema()
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    errors = sorted(Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_validator_rejects_a_broken_document(document: dict[str, Any]) -> None:
    # Guards the test above: the schema really is checking something.
    validator = Draft7Validator(asyncapi_schema())
    broken = json.loads(json.dumps(document))
    broken["components"]["messages"]["usageEvent"]["bogus"] = 1  # deep: an embedded definition
    broken["channels"]["eventsUsage"]["bindings"]["kafka"]["partitions"] = 0
    paths = {tuple(e.path) for e in validator.iter_errors(broken)}
    assert ("components", "messages", "usageEvent") in paths
    assert ("channels", "eventsUsage") in paths


def test_every_topic_has_a_channel(document: dict[str, Any]) -> None:
    topics = Topics("")
    public = {
        *topics.events,
        topics.dlq,
        topics.scores,
        topics.status,
        topics.alerts,
        topics.models,
    }
    specs = {spec.name: spec for spec in topics.specs(6) if spec.name in public}
    channels = {c["address"]: c for c in document["channels"].values()}
    # Internal topics (the scorer's own ticks) are not part of the published interface.
    assert set(channels) == public == set(specs)
    for name, spec in specs.items():
        binding = channels[name]["bindings"]["kafka"]
        compacted = spec.config.get("cleanup.policy") == "compact"
        assert ("topicConfiguration" in binding) == compacted, name
        if spec.partitions == 1:
            assert binding["partitions"] == 1


def test_dead_letter_headers_are_documented(document: dict[str, Any]) -> None:
    headers = document["components"]["messages"]["deadLetter"]["headers"]["properties"]
    assert set(headers) == set(DLQ_HEADERS.values())


def _resolve_local(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = _refs(document)
    assert refs
    for ref in refs:
        if ref.startswith("#/"):
            _resolve_local(document, ref)
        else:
            assert (generate.ROOT / ref).is_file(), ref


def test_message_examples_match_their_payload_schema(document: dict[str, Any]) -> None:
    checked = 0
    for name, message in document["components"]["messages"].items():
        payload = message["payload"]
        if "schema" not in payload:
            continue
        schema = json.loads((generate.ROOT / payload["schema"]["$ref"]).read_text())
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for example in message.get("examples", []):
            validator.validate(example["payload"])
            checked += 1
        assert message.get("examples"), f"{name} has no example"
    assert checked == 9
