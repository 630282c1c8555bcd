"""Kafka topic administration: ``ensure_topics`` and the ``healthscore topics`` command.

Topics are created explicitly with their partition counts and configs (``healthscore.topics``);
broker auto-creation is never relied on. Existing topics are left alone (their configs are an
operator's business), except that a partition count different from the spec is an error:
co-partitioned event topics and changelogs must agree, and partitions can never be removed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from healthscore.config import CommonSettings
from healthscore.topics import Topics, TopicSpec

log = logging.getLogger(__name__)

_NO_ERROR = 0
_UNKNOWN_TOPIC = 3
_TOPIC_ALREADY_EXISTS = 36
_REQUEST_TIMEOUT_MS = 30_000
_READY_WAIT_S = 30.0


class TopicMismatchError(RuntimeError):
    """An existing topic's partition count differs from its spec."""


class TopicAdminError(RuntimeError):
    """The broker refused to create or delete a topic, or a topic never became usable."""


def _partition_counts(described: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == _NO_ERROR}


def _mismatches(specs: Sequence[TopicSpec], counts: dict[str, int]) -> list[str]:
    return [
        f"{s.name}: has {counts[s.name]} partitions, expected {s.partitions}"
        for s in specs
        if s.name in counts and counts[s.name] != s.partitions
    ]


async def _describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> list[dict[str, Any]]:
    # Only ever describe topics that exist: a metadata request naming a missing topic makes
    # brokers with auto.create.topics.enable=true (the Docker image's default) create it.
    return list(await admin.describe_topics(list(names))) if names else []


async def _default_replication(admin: AIOKafkaAdminClient) -> int:
    cluster = await admin.describe_cluster()
    return max(1, min(3, len(cluster.get("brokers", []))))


def _configs(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    """The spec's configs, plus ``min.insync.replicas`` = replicas - 1 (at least 1).

    acks=all only waits for the in-sync replicas; with the broker default of 1 an acknowledged
    record can live on the leader alone and vanish with it. With 3 replicas, 2 must have it.
    """
    configs = {"min.insync.replicas": str(max(1, replication_factor - 1))}
    configs.update(spec.config)
    return configs


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int | None = None,
) -> None:
    """Create every topic in ``specs`` that does not exist, with its partitions and config.

    Idempotent and safe to race (another process creating the same topic is fine). Raises
    :class:`TopicMismatchError` naming every existing topic whose partition count differs
    from its spec, before creating anything. ``replication_factor`` defaults to the number of
    brokers, at most 3. Returns once every partition of every topic has a leader, so a producer
    started right after does not race the metadata propagation.
    """
    wanted = list(specs)
    names = [s.name for s in wanted]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=_REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        counts = _partition_counts(await _describe(admin, [n for n in names if n in existing]))
        problems = _mismatches(wanted, counts)
        if problems:
            raise TopicMismatchError("topic partition counts differ: " + "; ".join(problems))
        missing = [s for s in wanted if s.name not in existing]
        if missing:
            rf = replication_factor or await _default_replication(admin)
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, rf, topic_configs=_configs(s, rf)) for s in missing]
            )
            for topic, code, *rest in response.topic_errors:
                if code not in (_NO_ERROR, _TOPIC_ALREADY_EXISTS):
                    detail = rest[0] if rest and rest[0] else for_code(code).__name__
                    raise TopicAdminError(f"creating topic {topic} failed: {detail}")
            log.info("created topics: %s", ", ".join(s.name for s in missing))
        await _await_leaders(admin, wanted)
    finally:
        await admin.close()


async def _await_leaders(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    """Wait until every partition has a leader; re-check partition counts (a racing creator
    may have used another count)."""
    deadline = time.monotonic() + _READY_WAIT_S
    names = [s.name for s in specs]
    while True:
        described = await _describe(admin, names)
        counts = _partition_counts(described)
        problems = _mismatches(specs, counts)
        if problems:
            raise TopicMismatchError("topic partition counts differ: " + "; ".join(problems))
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == _NO_ERROR
            and t["partitions"]
            and all(p["leader"] >= 0 and p["error_code"] == _NO_ERROR for p in t["partitions"])
        }
        if ready.issuperset(names):
            return
        if time.monotonic() > deadline:
            waiting = sorted(set(names) - ready)
            raise TopicAdminError(f"topics without leaders after {_READY_WAIT_S}s: {waiting}")
        await asyncio.sleep(0.1)


async def list_topics(bootstrap: str) -> list[str]:
    """Names of every topic on the cluster (internal ones included)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=_REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Delete the named topics; topics that do not exist are ignored."""
    wanted = list(names)
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=_REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        response = await admin.delete_topics(wanted)
        for topic, code, *_ in response.topic_error_codes:
            if code not in (_NO_ERROR, _UNKNOWN_TOPIC):
                raise TopicAdminError(f"deleting topic {topic} failed: {for_code(code).__name__}")
    finally:
        await admin.close()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--partitions",
        type=int,
        help="partition count of the event topics (default: HEALTHSCORE_PARTITIONS)",
    )
    parser.add_argument(
        "--replication-factor",
        type=int,
        help="replication factor of new topics (default: number of brokers, at most 3)",
    )


def run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    specs = Topics(settings.topic_prefix).specs(args.partitions or settings.partitions)
    try:
        asyncio.run(
            ensure_topics(
                settings.kafka_bootstrap_servers,
                specs,
                replication_factor=args.replication_factor,
            )
        )
    except (TopicMismatchError, TopicAdminError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for spec in specs:
        config = ",".join(f"{k}={v}" for k, v in spec.config.items())
        print(f"{spec.name}\tpartitions={spec.partitions}\t{config}".rstrip())
    return 0
