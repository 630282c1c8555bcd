"""A real Prometheus server scrapes the real services.

`healthscore ingest`, `healthscore scorer` and `healthscore alerts` run as processes against the
test Kafka and PostgreSQL (unique topics, a fresh database); Prometheus (Debian's package, a
generated configuration with our alerting rules, a free port, data in a temp dir) scrapes their
/metrics every second. Events posted to ingest must become visible through Prometheus' HTTP API
as ingested, scored and seen by alerts, every rule must evaluate without error against the live
series, and each service's raw /metrics scrape must pass `promtool check metrics`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from ops_support import ROOT, RULES, tool

from healthscore.local.process import free_port
from healthscore.topics import Topics
from tests.conftest import PARTITIONS  # the partition count the `topics` fixture creates
from tests.support import wait_for

# The first run on a fresh machine installs the tools (helm builds from source: minutes).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

EVENTS = 30
ACCOUNTS = 5
STARTUP_S = 120.0
VISIBLE_S = 120.0
STOP_S = 30.0


@dataclass
class Process:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


async def start(name: str, argv: list[str], env: dict[str, str], port: int, logs: Path) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=logs,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, port, proc, log)


async def stop(process: Process) -> None:
    if process.proc.returncode is not None:
        return
    process.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.proc.wait(), STOP_S)
    except TimeoutError:
        process.proc.kill()
        await asyncio.wait_for(process.proc.wait(), STOP_S)


async def answers(client: httpx.AsyncClient, url: str, process: Process) -> bool:
    if process.proc.returncode is not None:
        raise AssertionError(f"{process.name} exited ({process.proc.returncode})\n{process.tail()}")
    try:
        return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


def service_env(
    kafka_bootstrap: str, database_url: str, topics: Topics, partitions: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        HEALTHSCORE_TOPIC_PREFIX=topics.prefix,
        HEALTHSCORE_PARTITIONS=str(partitions),
        HEALTHSCORE_LOG_LEVEL="WARNING",
    )
    return env


@dataclass
class Stack:
    ingest: Process
    scorer: Process
    alerts: Process
    prometheus: Process
    api_key: str

    @property
    def services(self) -> tuple[Process, ...]:
        return (self.ingest, self.scorer, self.alerts)


@pytest_asyncio.fixture(loop_scope="session")
async def stack(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> AsyncIterator[Stack]:
    base = service_env(kafka_bootstrap, database_url, topics, PARTITIONS)
    api_key = secrets.token_urlsafe(24)
    cli = [sys.executable, "-m", "healthscore.cli"]
    ports = {name: free_port() for name in ("ingest", "scorer", "alerts", "prometheus")}
    processes: list[Process] = []
    try:
        processes.append(
            await start(
                "ingest",
                [*cli, "ingest"],
                {
                    **base,
                    "HEALTHSCORE_INGEST_HOST": "127.0.0.1",
                    "HEALTHSCORE_INGEST_PORT": str(ports["ingest"]),
                    "HEALTHSCORE_BOOTSTRAP_API_KEY": api_key,
                },
                ports["ingest"],
                tmp_path,
            )
        )
        processes.append(
            await start(
                "scorer",
                [*cli, "scorer", "--no-create-topics"],
                {
                    **base,
                    "HEALTHSCORE_SCORER_HOST": "127.0.0.1",
                    "HEALTHSCORE_SCORER_PORT": str(ports["scorer"]),
                    "HEALTHSCORE_SCORER_STORE": "memory://",
                    "HEALTHSCORE_SCORER_DATA_DIR": str(tmp_path / "scorer"),
                    "HEALTHSCORE_SCORER_STANDBY_REPLICAS": "0",
                },
                ports["scorer"],
                tmp_path,
            )
        )
        processes.append(
            await start(
                "alerts",
                [*cli, "alerts"],
                {
                    **base,
                    "HEALTHSCORE_ALERTS_HOST": "127.0.0.1",
                    "HEALTHSCORE_ALERTS_PORT": str(ports["alerts"]),
                    "HEALTHSCORE_ALERTS_GROUP_ID": f"ops-{uuid.uuid4().hex[:8]}",
                },
                ports["alerts"],
                tmp_path,
            )
        )
        config = prometheus_config(
            {p.name: p.port for p in processes}, tmp_path / "rules", tmp_path
        )
        processes.append(
            await start(
                "prometheus",
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                    "--log.level=warn",
                ],
                {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                ports["prometheus"],
                tmp_path,
            )
        )
        async with httpx.AsyncClient(timeout=5) as client:
            for process in processes:
                path = "/-/ready" if process.name == "prometheus" else "/readyz"
                url = f"http://127.0.0.1:{process.port}{path}"
                await wait_for(
                    functools.partial(answers, client, url, process),
                    timeout=STARTUP_S,
                    interval=0.2,
                    message=f"{process.name} ready",
                )
        ingest, scorer, alerts, prometheus = processes
        yield Stack(ingest, scorer, alerts, prometheus, api_key=api_key)
    except BaseException:
        for process in processes:
            print(process.tail())
        raise
    finally:
        await asyncio.gather(*(stop(p) for p in reversed(processes)), return_exceptions=True)


def prometheus_config(ports: dict[str, int], rules_dir: Path, where: Path) -> Path:
    rules_dir.mkdir()
    (rules_dir / RULES.name).write_bytes(RULES.read_bytes())
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.rules.yml")],
        "scrape_configs": [
            {
                "job_name": f"healthscore-{name}",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
            for name, port in ports.items()
        ],
    }
    path = where / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def usage_events() -> list[dict[str, Any]]:
    example = json.loads((ROOT / "schemas" / "examples" / "usage.json").read_text())
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC).isoformat()
    return [
        {
            **example,
            "event_id": f"{run}-{i}",
            "account_id": f"ops-{run}-{i % ACCOUNTS}",
            "occurred_at": now,
        }
        for i in range(EVENTS)
    ]


async def query(client: httpx.AsyncClient, stack: Stack, promql: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"http://127.0.0.1:{stack.prometheus.port}/api/v1/query", params={"query": promql}
    )
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def value(client: httpx.AsyncClient, stack: Stack, promql: str) -> float:
    result = await query(client, stack, promql)
    return float(result[0]["value"][1]) if result else 0.0


async def test_prometheus_sees_events_ingested_and_scored(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        up = await wait_for(
            lambda: query(client, stack, 'up{job=~"healthscore-.*"} == 1'),
            timeout=VISIBLE_S,
            message="every service scraped",
        )
        await wait_for(
            lambda: _all_up(client, stack),
            timeout=VISIBLE_S,
            message=f"ingest, scorer and alerts up (last: {up})",
        )

        response = await client.post(
            f"http://127.0.0.1:{stack.ingest.port}/v1/events",
            json=usage_events(),
            headers={"Authorization": f"Bearer {stack.api_key}"},
        )
        assert response.status_code == 202, response.text

        checks = {
            "ingested": "sum(healthscore_ingest_events_accepted_total)",
            "ingest requests": (
                'sum(healthscore_ingest_requests_total{route="/v1/events",code="202"})'
            ),
            "scored": 'sum(healthscore_scorer_events_processed_total{type="usage"})',
            "latency observed": "sum(healthscore_scorer_event_lag_seconds_count)",
            "first scores": "sum(healthscore_scorer_score_changes_total)",
            "seen by alerts": "sum(healthscore_alerts_score_records_total)",
            "accounts by status": "sum(healthscore_scorer_accounts)",
        }
        minimum = {
            "ingested": EVENTS,
            "ingest requests": 1,
            "scored": EVENTS,
            "latency observed": EVENTS,
            "first scores": ACCOUNTS,
            "seen by alerts": ACCOUNTS,
            "accounts by status": ACCOUNTS,
        }
        for what, promql in checks.items():
            await wait_for(
                functools.partial(_at_least, client, stack, promql, minimum[what]),
                timeout=VISIBLE_S,
                interval=0.5,
                message=f"{what} visible in Prometheus ({promql} >= {minimum[what]})",
            )

        await wait_for(
            lambda: _rules_evaluated(client, stack),
            timeout=VISIBLE_S,
            interval=0.5,
            message="every alerting rule evaluated against the live series",
        )
        await _promtool_check_metrics(client, stack)


async def _all_up(client: httpx.AsyncClient, stack: Stack) -> bool:
    up = await query(client, stack, 'up{job=~"healthscore-.*"}')
    jobs = {r["metric"]["job"]: float(r["value"][1]) for r in up}
    return jobs == {"healthscore-ingest": 1.0, "healthscore-scorer": 1.0, "healthscore-alerts": 1.0}


async def _at_least(client: httpx.AsyncClient, stack: Stack, promql: str, minimum: int) -> bool:
    return await value(client, stack, promql) >= minimum


async def _rules_evaluated(client: httpx.AsyncClient, stack: Stack) -> bool:
    response = await client.get(f"http://127.0.0.1:{stack.prometheus.port}/api/v1/rules")
    response.raise_for_status()
    rules = [r for g in response.json()["data"]["groups"] for r in g["rules"]]
    expected = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert len(rules) == len(expected)
    errors = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] == "err"]
    assert not errors, errors
    return all(r["health"] == "ok" for r in rules)


async def _promtool_check_metrics(client: httpx.AsyncClient, stack: Stack) -> None:
    """Each service's raw /metrics, after traffic (so labelled series exist), passes promtool."""
    for process in stack.services:
        response = await client.get(f"http://127.0.0.1:{process.port}/metrics")
        assert response.status_code == 200, process.name
        assert f"healthscore_{process.name}_".encode() in response.content
        done = await asyncio.to_thread(
            subprocess.run,
            [tool("promtool"), "check", "metrics"],
            input=response.content,
            capture_output=True,
            timeout=60,
            check=False,
        )
        problems = (done.stdout + done.stderr).decode()
        assert done.returncode == 0, f"{process.name}:\n{problems}"
        assert not problems.strip(), f"{process.name}:\n{problems}"
