"""``healthscore demo --duration 60`` end to end: every service as a child process on simulated
traffic, checked through the machine-readable summary.

The demo reuses the test session's Kafka and PostgreSQL (it then works under its own topic prefix
and in a fresh database, both removed at exit), as it would reuse a developer's.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

DURATION = 60


async def _run_demo(kafka_bootstrap: str, postgres_url: str, summary_path: Path) -> tuple[int, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": postgres_url,
        "COLUMNS": "160",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "healthscore.cli",
        "demo",
        "--duration",
        str(DURATION),
        "--summary-json",
        str(summary_path),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 420)
    except TimeoutError:
        proc.terminate()
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
        raise AssertionError("the demo did not finish in time:\n" + output.decode()) from None
    return proc.returncode or 0, output.decode(errors="replace")


@pytest.fixture
async def summary(kafka_bootstrap: str, postgres_url: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "summary.json"
    code, output = await _run_demo(kafka_bootstrap, postgres_url, path)
    assert code == 0, output
    assert "Outcome per persona" in output, output
    result: dict[str, Any] = json.loads(path.read_text())
    result["_output"] = output
    return result


def _accounts(summary: dict[str, Any], persona: str) -> list[dict[str, Any]]:
    found = [a for a in summary["accounts"] if a["persona"] == persona]
    assert found, persona
    return found


async def test_the_demo_shows_every_persona(summary: dict[str, Any]) -> None:
    output = summary["_output"]
    events = summary["events"]
    assert events["sent"] > events["history"] > 0, output
    assert events["accepted"] == events["sent"]
    assert events["rejected"] == 0
    assert summary["latency_seconds"]["samples"] > 0
    assert summary["latency_seconds"]["p99"] < 30

    # The shipped models were published through the api, and the scorer scores with them.
    published = summary["models_published"]
    assert set(published) == {"adoption", "onboarding", "renewal"}, output
    for account in summary["accounts"]:
        assert account["model_version"] == published[account["model_id"]], account

    # Churning accounts end red, and their alerts reached the local Slack and CRM receiver.
    for account in _accounts(summary, "churning"):
        assert account["status"] == "red", account
        assert {"red_alert", "status_drop"} & set(account["alerts"]), account
        assert {"slack", "crm"} <= set(account["receiver_destinations"]), account

    # Healthy accounts stay green and nobody is paged about them.
    for account in _accounts(summary, "healthy"):
        assert account["status"] == "green", account
        assert account["alerts"] == {}, account
        assert account["receiver_destinations"] == [], account

    # Expanding accounts are green and flagged as expansion opportunities.
    for account in _accounts(summary, "expanding"):
        assert account["status"] == "green", account
        assert "expansion_opportunity" in account["alerts"], account
        assert "crm" in account["receiver_destinations"], account

    # Declining accounts have left green; stalled onboarding is flagged.
    for account in _accounts(summary, "declining"):
        assert account["status"] in ("amber", "red"), account
    for account in _accounts(summary, "onboarding_stalled"):
        assert account["status"] in ("amber", "red"), account
        assert account["alerts"], account

    alerts = summary["alerts_by_rule"]
    assert alerts.get("red_alert", 0) >= len(_accounts(summary, "churning"))
    assert summary["webhooks_received"].get("slack", 0) > 0
