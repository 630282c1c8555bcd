"""Pure parts of the local Kafka: cluster ids, server.properties, the Maven POM, log4j config."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthscore.local.kafka import (
    KAFKA_VERSION,
    broker_properties,
    cache_root,
    generate_cluster_id,
    jars_cached,
    kafka_libs_dir,
    log4j_properties,
    maven_pom,
    render_properties,
)


def test_cluster_id_is_16_bytes_url_safe_unpadded() -> None:
    ids = {generate_cluster_id() for _ in range(500)}

    assert len(ids) == 500
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_properties_describe_a_combined_single_node(tmp_path: Path) -> None:
    props = broker_properties(broker_port=19092, controller_port=19093, log_dir=tmp_path / "d")

    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    # Clients must never be told about the controller listener.
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "d")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
    ):
        assert props[key] == "1", key


def test_render_properties_round_trips_through_a_java_style_parser() -> None:
    text = render_properties({"a.b": "1", "log.dirs": r"C:\kafka\data", "x": "y=z"})

    parsed = dict(line.split("=", 1) for line in text.splitlines())
    assert parsed == {"a.b": "1", "log.dirs": r"C:\\kafka\\data", "x": "y=z"}
    assert text.endswith("\n")


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40))
@settings(max_examples=50)
def test_rendered_values_stay_on_one_line(value: str) -> None:
    assert render_properties({"k": value}).count("\n") == 1


def test_log4j_writes_to_a_file_and_keeps_the_start_line(tmp_path: Path) -> None:
    text = log4j_properties(tmp_path / "server.log")

    assert "log4j.rootLogger=WARN, file" in text
    assert f"log4j.appender.file.File={tmp_path / 'server.log'}" in text
    assert "log4j.logger.kafka.server.KafkaRaftServer=INFO" in text
    assert "Console" not in text


def test_pom_lists_kafka_and_its_logging_backend() -> None:
    root = ET.fromstring(maven_pom("3.9.1"))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}

    deps = {
        (d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns)): (
            d.findtext("m:version", namespaces=ns)
        )
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps == {
        ("org.apache.kafka", "kafka_2.13"): "3.9.1",
        ("org.slf4j", "slf4j-reload4j"): "1.7.36",
        ("ch.qos.reload4j", "reload4j"): "1.2.25",
    }


def test_cache_dir_is_overridable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHSCORE_CACHE_DIR", str(tmp_path))

    assert cache_root() == tmp_path
    assert kafka_libs_dir() == tmp_path / f"kafka-{KAFKA_VERSION}" / "libs"
    assert not jars_cached()
    kafka_libs_dir().mkdir(parents=True)
    assert not jars_cached()  # a directory without the completion marker is not a cache hit
    (kafka_libs_dir() / ".complete").write_text(KAFKA_VERSION)
    assert jars_cached()
