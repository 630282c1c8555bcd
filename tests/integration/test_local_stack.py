"""The local stack and the shared test fixtures: Kafka round trips, topic administration,
migrations, a broker restart that keeps its data, and ``healthscore local`` as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from healthscore.db.engine import create_db_engine
from healthscore.db.migrations import head_revisions
from healthscore.db.tables import load_all
from healthscore.kafka_admin import (
    TopicMismatchError,
    delete_topics,
    ensure_topics,
    list_topics,
)
from healthscore.local import LocalKafka
from healthscore.topics import Topics, TopicSpec
from tests.conftest import PARTITIONS
from tests.support import at_least, consume, produce, wait_for

pytestmark = pytest.mark.integration


async def _partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def _cleanup_policy(bootstrap: str, name: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})]
        )
    finally:
        await admin.close()
    [(error_code, _, _, resource, entries)] = response.resources
    assert (error_code, resource) == (0, name)
    return str({entry[0]: entry[1] for entry in entries}["cleanup.policy"])


async def _versions(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
    return sorted(row[0] for row in rows)


async def test_produce_consume_round_trip(kafka_bootstrap: str, topics: Topics) -> None:
    topic = topics.event("usage")
    sent = [(f"acct-{i}", f'{{"n": {i}}}') for i in range(20)]
    await produce(kafka_bootstrap, topic, sent, headers=[("trace", b"x")])

    records = await consume(kafka_bootstrap, topic, until=at_least(20), timeout=30)

    got = sorted((r.key, r.value) for r in records)
    assert got == sorted((k.encode(), v.encode()) for k, v in sent)
    assert {r.partition for r in records} <= set(range(PARTITIONS))
    assert all(r.headers == (("trace", b"x"),) for r in records)


async def test_topics_fixture_creates_every_topic(kafka_bootstrap: str, topics: Topics) -> None:
    specs = topics.specs(PARTITIONS)

    counts = await _partitions(kafka_bootstrap, [s.name for s in specs])

    assert counts == {s.name: s.partitions for s in specs}
    assert counts[topics.models] == 1
    assert counts[topics.scores] == PARTITIONS
    assert await _cleanup_policy(kafka_bootstrap, topics.status) == "compact"
    assert await _cleanup_policy(kafka_bootstrap, topics.models) == "compact"
    assert await _cleanup_policy(kafka_bootstrap, topics.scores) == "delete"


async def test_ensure_topics_is_idempotent(kafka_bootstrap: str, topics: Topics) -> None:
    specs = topics.specs(PARTITIONS)

    await ensure_topics(kafka_bootstrap, specs)
    await asyncio.gather(*(ensure_topics(kafka_bootstrap, specs) for _ in range(3)))

    counts = await _partitions(kafka_bootstrap, [s.name for s in specs])
    assert counts == {s.name: s.partitions for s in specs}


async def test_ensure_topics_creates_concurrently_without_error(kafka_bootstrap: str) -> None:
    prefix = f"race{uuid.uuid4().hex[:8]}."
    specs = Topics(prefix).specs(2)
    try:
        await asyncio.gather(*(ensure_topics(kafka_bootstrap, specs) for _ in range(3)))
        counts = await _partitions(kafka_bootstrap, [s.name for s in specs])
        assert counts == {s.name: s.partitions for s in specs}
    finally:
        await delete_topics(kafka_bootstrap, [s.name for s in specs])


async def test_partition_mismatch_is_a_clear_error(kafka_bootstrap: str, topics: Topics) -> None:
    fresh = TopicSpec(f"{topics.prefix}never.created", 1)

    with pytest.raises(TopicMismatchError) as raised:
        await ensure_topics(kafka_bootstrap, [fresh, *topics.specs(PARTITIONS + 2)])

    message = str(raised.value)
    assert f"{topics.event('usage')}: has {PARTITIONS} partitions, expected {PARTITIONS + 2}" in (
        message
    )
    # Nothing was created before the mismatch was reported.
    assert fresh.name not in await list_topics(kafka_bootstrap)


async def test_delete_topics_removes_and_ignores_missing(kafka_bootstrap: str) -> None:
    name = f"del{uuid.uuid4().hex[:8]}.topic"
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 1)])

    await delete_topics(kafka_bootstrap, [name, f"{name}.missing"])

    async def gone() -> bool:
        return name not in await list_topics(kafka_bootstrap)

    await wait_for(gone, timeout=15, message=f"{name} deleted")


async def test_migrations_apply_to_a_fresh_database(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        async with engine.connect() as conn:
            applied = await _versions(conn)
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()

    assert applied == sorted(head_revisions())
    assert set(load_all().tables) <= tables
    assert "api_keys" in tables


async def test_broker_restart_on_same_port_keeps_records(local_kafka: LocalKafka) -> None:
    bootstrap = local_kafka.bootstrap_servers
    topic = "restart.check"
    await ensure_topics(bootstrap, [TopicSpec(topic, 2)])
    await produce(bootstrap, topic, [("k", "before restart")])

    await local_kafka.stop(keep_data=True)
    assert not local_kafka.running
    await local_kafka.start()

    assert local_kafka.bootstrap_servers == bootstrap
    await produce(bootstrap, topic, [("k", "after restart")])
    records = await consume(bootstrap, topic, until=at_least(2), timeout=30)
    assert [r.value for r in records] == [b"before restart", b"after restart"]


async def test_healthscore_local_writes_env_file_and_cleans_up(tmp_path: Path) -> None:
    env_file = tmp_path / "stack.env"
    log_file = tmp_path / "local.log"
    with log_file.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "healthscore.cli",
            "local",
            "--env-file",
            str(env_file),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_for(
            lambda: env_file.exists() or proc.returncode is not None,
            timeout=120,
            interval=0.1,
            message="env file written",
        )
        assert proc.returncode is None, log_file.read_text()
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
        assert exported["DATABASE_URL"].endswith("/healthscore")
        await ensure_topics(exported["KAFKA_BOOTSTRAP_SERVERS"], [TopicSpec("probe", 1)])
        engine = create_db_engine(exported["DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                versions = await _versions(conn)
        finally:
            await engine.dispose()
        assert versions == sorted(head_revisions())
        data_dirs = [
            line.rsplit("Kafka data ", 1)[1].rstrip(")")
            for line in log_file.read_text().splitlines()
            if "Kafka data " in line
        ]
        assert len(data_dirs) == 1
        assert await asyncio.to_thread(Path(data_dirs[0]).is_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 60)

    assert code == 0, log_file.read_text()
    assert not env_file.exists()
    assert not await asyncio.to_thread(Path(data_dirs[0]).exists)
    log = log_file.read_text()
    assert "ready in" in log


async def test_topics_command_creates_the_product_topics(kafka_bootstrap: str) -> None:
    prefix = f"cmd{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "HEALTHSCORE_TOPIC_PREFIX": prefix,
        "HEALTHSCORE_PARTITIONS": "2",
    }
    specs = Topics(prefix).specs(2)
    try:
        for _ in range(2):  # the second run finds everything in place
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "healthscore.cli",
                "topics",
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, out.decode()
        counts = await _partitions(kafka_bootstrap, [s.name for s in specs])
        assert counts == {s.name: s.partitions for s in specs}
        assert f"{prefix}health.status\tpartitions=2\tcleanup.policy=compact" in out.decode()
    finally:
        await delete_topics(kafka_bootstrap, [s.name for s in specs])


async def test_unreachable_broker_never_answers() -> None:
    from healthscore.local.kafka import broker_answers
    from healthscore.local.process import free_port

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(broker_answers(f"127.0.0.1:{free_port()}"), 2)


async def test_failed_format_is_an_error_and_leaves_nothing_behind() -> None:
    kafka = LocalKafka(java="/bin/false")

    with pytest.raises(RuntimeError, match="StorageTool format failed"):
        await kafka.start()

    assert kafka.data_dir is None
    assert not kafka.running
