"""Apache Kafka in KRaft single-node combined mode, from Maven Central jars (no Docker).

``resolve_kafka_jars`` runs ``mvn dependency:copy-dependencies`` once per version into a cache
directory; later runs find the jars and never touch the network. ``LocalKafka`` formats a
storage directory (``kafka.tools.StorageTool format``) and runs ``kafka.Kafka`` on free loopback
ports. It can be stopped and started again on the same ports with its data kept, which is how
tests take the broker away mid-run.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from healthscore.local.process import (
    apt_install,
    environ_without,
    free_port,
    run_checked,
    spawn,
    stop_process,
    tail,
)

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.2"
# kafka_2.13's POM leaves the logging backend to the application; 3.9.x logs through log4j 1.x.
LOGGING_ARTIFACTS = (
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
STARTED_LINE = "Kafka Server started"
HEAP_OPTS = ("-Xms256m", "-Xmx512m")


def cache_root() -> Path:
    """``$HEALTHSCORE_CACHE_DIR`` or ``~/.cache/healthscore``."""
    override = os.environ.get("HEALTHSCORE_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "healthscore"


def generate_cluster_id() -> str:
    """A KRaft cluster id as ``StorageTool random-uuid`` makes it: 16 random bytes, URL-safe
    base64 without padding, never starting with ``-`` (it would parse as a CLI flag)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def maven_pom(version: str) -> str:
    """A throwaway POM whose runtime dependencies are exactly what the broker needs."""
    deps = [("org.apache.kafka", "kafka_2.13", version), *LOGGING_ARTIFACTS]
    dep_xml = "\n".join(
        "    <dependency>"
        f"<groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>"
        "</dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>healthscore.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
</project>
"""


def kafka_libs_dir(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    return (cache_dir or cache_root()) / f"kafka-{version}" / "libs"


def jars_cached(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> bool:
    return (kafka_libs_dir(version, cache_dir) / ".complete").exists()


def resolve_kafka_jars(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """The directory holding every jar the broker needs, downloading them on first use.

    Blocking (it may run ``mvn`` for a minute): call it through ``asyncio.to_thread``. A file
    lock serialises concurrent first runs; the jars land in a temporary directory that is
    renamed into place, so a half-finished download is never mistaken for a cache hit.
    """
    libs = kafka_libs_dir(version, cache_dir)
    base = libs.parent
    if (libs / ".complete").exists():
        return libs
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / ".complete").exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None and apt_install("maven", "default-jre-headless"):
            mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(
                "Kafka's jars are not cached and `mvn` is not on PATH: install Maven "
                "(Debian: apt-get install maven) and a JDK 17+, or point "
                "KAFKA_BOOTSTRAP_SERVERS at a running broker."
            )
        with tempfile.TemporaryDirectory(prefix="pom-", dir=base) as work:
            staging = Path(work) / "libs"
            (Path(work) / "pom.xml").write_text(maven_pom(version))
            log.info("resolving Kafka %s jars from Maven Central into %s", version, libs)
            started = time.monotonic()
            run_checked(
                [
                    mvn,
                    "-B",
                    "-q",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging}",
                ],
                what="mvn dependency:copy-dependencies",
                cwd=Path(work),
            )
            (staging / ".complete").write_text(version + "\n")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            log.info("Kafka jars resolved in %.1fs", time.monotonic() - started)
    return libs


def broker_properties(
    *, broker_port: int, controller_port: int, log_dir: Path, node_id: int = 1
) -> dict[str, str]:
    """server.properties for one process that is both the KRaft controller and the broker."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{node_id}@127.0.0.1:{controller_port}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # 50 offsets partitions (the default) slow the first consumer group for no benefit here.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        # The 3 s default delays every consumer group's first join, i.e. every test.
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created explicitly with their partition counts and cleanup policies.
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        # Two cores: fewer threads, and a 16 MiB compaction buffer instead of 128 MiB of heap.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "log.cleaner.threads": "1",
    }


def render_properties(props: Mapping[str, str]) -> str:
    """Java .properties text (values here never need escaping beyond backslashes)."""
    return "".join(f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in props.items())


def log4j_properties(log_file: Path) -> str:
    """Warnings and the startup line to a file; nothing on the console."""
    return render_properties(
        {
            "log4j.rootLogger": "WARN, file",
            "log4j.appender.file": "org.apache.log4j.FileAppender",
            "log4j.appender.file.File": str(log_file),
            "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
            # Logs the readiness line, "Kafka Server started".
            "log4j.logger.kafka.server.KafkaRaftServer": "INFO",
        }
    )


class KafkaStartError(RuntimeError):
    """The broker exited or did not become ready in time; the message holds its log tail."""


class LocalKafka:
    """A throwaway single-node Kafka.

    ``start()`` resolves the jars (cached), formats the storage on first start, launches the JVM
    and returns when the broker logs ``Kafka Server started`` and answers an admin request.
    ``stop(keep_data=True)`` leaves the data directory so a later ``start()`` comes back on the
    same ports with every record; ``stop()`` removes it.
    """

    def __init__(
        self,
        *,
        version: str = KAFKA_VERSION,
        cache_dir: Path | None = None,
        java: str | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        self.version = version
        self._cache_dir = cache_dir
        self._java = java
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._libs: Path | None = None
        self.broker_port = 0
        self.controller_port = 0
        self.cluster_id = ""

    @property
    def bootstrap_servers(self) -> str:
        if not self.broker_port:
            raise RuntimeError("LocalKafka has not been started")
        return f"127.0.0.1:{self.broker_port}"

    @property
    def data_dir(self) -> Path | None:
        return self._dir

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def __aenter__(self) -> LocalKafka:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _java_binary(self) -> str:
        if self._java:
            return self._java
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").exists():
            return str(Path(java_home) / "bin" / "java")
        found = shutil.which("java")
        if found is None and apt_install("default-jre-headless"):
            found = shutil.which("java")
        if found is None:
            raise RuntimeError("`java` (JDK 17+) is not on PATH; Kafka needs it")
        return found

    def _jvm(self, *args: str, heap: tuple[str, ...] = HEAP_OPTS) -> list[str]:
        assert self._libs is not None
        assert self._dir is not None
        return [
            self._java_binary(),
            *heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self._dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self._dir}",
            "-cp",
            f"{self._libs}/*",
            *args,
        ]

    def _prepare(self) -> None:
        """First start: pick ports, write the config, format the storage."""
        assert self._libs is not None
        self._dir = Path(tempfile.mkdtemp(prefix="healthscore-kafka-"))
        self.broker_port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.broker_port:
            self.controller_port = free_port()
        self.cluster_id = generate_cluster_id()
        props = broker_properties(
            broker_port=self.broker_port,
            controller_port=self.controller_port,
            log_dir=self._dir / "data",
        )
        (self._dir / "server.properties").write_text(render_properties(props))
        (self._dir / "log4j.properties").write_text(log4j_properties(self._dir / "server.log"))
        try:
            self._format()
        except BaseException:
            # A half-prepared directory must not be mistaken for a formatted one next time.
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise

    def _format(self) -> None:
        assert self._dir is not None
        run_checked(
            self._jvm(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self.cluster_id,
                "-c",
                str(self._dir / "server.properties"),
                heap=("-Xmx128m", "-XX:TieredStopAtLevel=1"),
            ),
            what="kafka StorageTool format",
            env=environ_without("KAFKA_OPTS", "KAFKA_HEAP_OPTS", "JAVA_TOOL_OPTIONS"),
        )

    async def start(self) -> None:
        if self.running:
            return
        if self._libs is None:
            self._libs = await asyncio.to_thread(resolve_kafka_jars, self.version, self._cache_dir)
        if self._dir is None:
            await asyncio.to_thread(self._prepare)
        assert self._dir is not None
        log_file = self._dir / "server.log"
        # Count readiness lines already there, so a restart waits for its own.
        seen = _count_lines(log_file, STARTED_LINE)
        self._proc = spawn(
            self._jvm("kafka.Kafka", str(self._dir / "server.properties")),
            output=self._dir / "kafka.out",
            env=environ_without("KAFKA_OPTS", "KAFKA_HEAP_OPTS", "JAVA_TOOL_OPTIONS"),
        )
        try:
            await self._await_ready(log_file, seen)
        except BaseException:
            await stop_process(self._proc, sig=signal.SIGKILL, grace=5)
            self._proc = None
            raise

    async def _await_ready(self, log_file: Path, seen: int) -> None:
        assert self._proc is not None
        assert self._dir is not None
        deadline = time.monotonic() + self._startup_timeout
        while _count_lines(log_file, STARTED_LINE) <= seen:
            if self._proc.poll() is not None:
                raise KafkaStartError(self._failure(f"exited with {self._proc.returncode}"))
            if time.monotonic() > deadline:
                raise KafkaStartError(self._failure(f"not started in {self._startup_timeout}s"))
            await asyncio.sleep(0.1)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(broker_answers(self.bootstrap_servers), remaining)
        except TimeoutError as exc:
            raise KafkaStartError(self._failure("logged start but admin calls time out")) from exc

    def _failure(self, what: str) -> str:
        assert self._dir is not None
        return (
            f"Kafka {self.version} {what} (data {self._dir}).\n"
            f"--- server.log ---\n{tail(self._dir / 'server.log')}\n"
            f"--- kafka.out ---\n{tail(self._dir / 'kafka.out')}"
        )

    async def stop(self, *, keep_data: bool = False, grace: float = 30.0) -> None:
        """SIGTERM (Kafka shuts down cleanly), SIGKILL after ``grace`` seconds; then remove the data
        unless ``keep_data``."""
        if self._proc is not None:
            await stop_process(self._proc, sig=signal.SIGTERM, grace=grace)
            self._proc = None
        if not keep_data and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self.broker_port = self.controller_port = 0


def _count_lines(path: Path, needle: str) -> int:
    try:
        with path.open(errors="replace") as handle:
            return sum(1 for line in handle if needle in line)
    except FileNotFoundError:
        return 0


async def broker_answers(bootstrap: str) -> None:
    """Return once an admin client can bootstrap and describe the cluster (retrying)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            if cluster.get("brokers"):
                return
        except (KafkaError, OSError):
            pass
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
