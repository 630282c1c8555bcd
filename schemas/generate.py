"""Generate the JSON Schema files and the AsyncAPI document from the pydantic models.

``python -m schemas.generate`` rewrites ``schemas/json/*.schema.json`` and
``schemas/asyncapi.yaml``;
``python -m schemas.generate --check`` exits 1 and names the stale files instead (the unit tests
run the same comparison, so a model change without regenerated files fails the build).

Event schemas are generated in validation mode (what ingest accepts); message schemas in
serialization mode (what consumers of our topics receive). Message examples in the AsyncAPI
document are the files in ``schemas/examples/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, TypeAdapter

from schemas.events import EVENT_MODELS, EVENT_TYPES, Event
from schemas.messages import DLQ_HEADERS, AlertRaised, ModelPublished, ScoreChanged

ROOT = Path(__file__).resolve().parent
JSON_DIR = ROOT / "json"
EXAMPLES_DIR = ROOT / "examples"
ASYNCAPI_PATH = ROOT / "asyncapi.yaml"

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
KAFKA_BINDING = "0.5.0"

Mode = Literal["validation", "serialization"]

MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "score_changed": ScoreChanged,
    "alert_raised": AlertRaised,
    "model_published": ModelPublished,
}


def _schema(adapter: TypeAdapter[Any], title: str, mode: Mode) -> dict[str, Any]:
    body = adapter.json_schema(mode=mode)
    body["title"] = title
    return {"$schema": DIALECT, **body}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for every event type, the event union and every message."""
    files: dict[str, dict[str, Any]] = {}
    for event_type, model in EVENT_MODELS.items():
        title = f"{event_type.capitalize()}Event"
        files[f"{event_type}_event.schema.json"] = _schema(TypeAdapter(model), title, "validation")
    event = _schema(TypeAdapter(Event), "Event", "validation")
    event["description"] = "Any ingest event; `type` selects the payload."
    files["event.schema.json"] = event
    for name, message in MESSAGE_MODELS.items():
        files[f"{name}.schema.json"] = _schema(
            TypeAdapter(message), message.__name__, "serialization"
        )
    return files


def _example(name: str) -> Any:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text())


def _camel(name: str) -> str:
    head, *rest = name.replace(".", "_").split("_")
    return head + "".join(part.capitalize() for part in rest)


def _payload(schema_file: str) -> dict[str, Any]:
    return {"schemaFormat": SCHEMA_FORMAT, "schema": {"$ref": f"./json/{schema_file}"}}


def _key(description: str) -> dict[str, Any]:
    return {"key": {"type": "string", "description": description}, "bindingVersion": KAFKA_BINDING}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document describing every topic and its messages."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def channel(
        address: str,
        message: str,
        description: str,
        *,
        compacted: bool = False,
        single_partition: bool = False,
    ) -> None:
        channel_id = _camel(address)
        binding: dict[str, Any] = {"topic": address, "bindingVersion": KAFKA_BINDING}
        if single_partition:
            binding["partitions"] = 1
        if compacted:
            binding["topicConfiguration"] = {"cleanup.policy": ["compact"]}
        channels[channel_id] = {
            "address": address,
            "description": description,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {"kafka": binding},
        }
        operations[f"send{channel_id[0].upper()}{channel_id[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message}"}],
        }

    for event_type in EVENT_TYPES:
        name = f"{event_type}Event"
        messages[name] = {
            "name": name,
            "title": f"{event_type} event",
            "summary": f"A `{event_type}` event accepted by ingest.",
            "contentType": "application/json",
            "payload": _payload(f"{event_type}_event.schema.json"),
            "bindings": {"kafka": _key("account_id (UTF-8)")},
            "examples": [{"name": event_type, "payload": _example(event_type)}],
        }
        channel(
            f"events.{event_type}",
            name,
            f"`{event_type}` events as ingest accepted them (the JSON of the event, with "
            "`schema_version`), keyed by `account_id`; co-partitioned with the other event "
            "topics (`HEALTHSCORE_PARTITIONS`).",
        )

    messages["deadLetter"] = {
        "name": "deadLetter",
        "title": "dead letter",
        "summary": "A record that could not be processed, unchanged, with the reason in headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": ["healthscore-dlq-reason", "healthscore-dlq-topic"],
            "properties": {
                name: {"type": "string", "description": f"DLQ_HEADERS[{key!r}] (UTF-8)"}
                for key, name in DLQ_HEADERS.items()
            },
        },
        "payload": {"description": "the original record value, byte for byte"},
        "bindings": {"kafka": _key("the original record key")},
    }
    channel(
        "events.dlq",
        "deadLetter",
        "Records that could not be decoded or validated; why is in the headers (reason is a "
        "short machine code such as `decode_error` or `validation_error`, detail names fields "
        "and never carries payload text).",
    )

    for name, address, description, compacted in (
        (
            "score_changed",
            "health.scores",
            "One record per score or status change, keyed by `account_id`.",
            False,
        ),
        (
            "score_changed",
            "health.status",
            "Compacted: the latest `ScoreChanged` per account, keyed by `account_id`.",
            True,
        ),
        ("alert_raised", "health.alerts", "One record per alert, keyed by `account_id`.", False),
        (
            "model_published",
            "health.models",
            "Compacted, one partition: every published health model version, keyed by model id.",
            True,
        ),
    ):
        model = MESSAGE_MODELS[name]
        message = _camel(name)
        key = "model id (UTF-8)" if name == "model_published" else "account_id (UTF-8)"
        messages[message] = {
            "name": model.__name__,
            "title": model.__name__,
            "summary": (model.__doc__ or model.__name__).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": _payload(f"{name}.schema.json"),
            "bindings": {"kafka": _key(key)},
            "examples": [{"name": name, "payload": _example(name)}],
        }
        channel(
            address,
            message,
            description,
            compacted=compacted,
            single_partition=address == "health.models",
        )

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Healthscore",
            "version": "1",
            "description": (
                "Kafka topics of Healthscore. Topic names take the prefix "
                "`HEALTHSCORE_TOPIC_PREFIX` (default empty). Values are JSON with "
                "`schema_version`; consumers ignore fields they do not know. Generated by "
                "`python -m schemas.generate` from the pydantic models in `schemas/`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "`KAFKA_BOOTSTRAP_SERVERS`; `healthscore local` starts one.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def render_asyncapi(document: dict[str, Any]) -> str:
    header = "# Generated by `python -m schemas.generate`: edit the models, not this file.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def expected_files() -> dict[Path, str]:
    files = {JSON_DIR / name: render_json(s) for name, s in json_schemas().items()}
    files[ASYNCAPI_PATH] = render_asyncapi(asyncapi())
    return files


def stale_files() -> list[Path]:
    """Generated files that are missing or differ from what the models produce now."""
    stale = [
        path
        for path, text in expected_files().items()
        if not path.exists() or path.read_text() != text
    ]
    known = set(expected_files())
    stale += [path for path in JSON_DIR.glob("*.schema.json") if path not in known]
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT.parent)}", file=sys.stderr)
        return 1 if stale else 0
    JSON_DIR.mkdir(exist_ok=True)
    expected = expected_files()
    for path in JSON_DIR.glob("*.schema.json"):
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
