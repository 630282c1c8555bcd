"""Helpers for the deploy checks: locating the ops tools and the settings each service reads.

Tools are installed by ``scripts/tools.sh`` (the same script ``make tools`` runs), so a fresh
machine gets helm, promtool, prometheus and the Compose schema the first time these tests run.
A tool that cannot be installed fails the test with the script's own message; nothing skips.
"""

from __future__ import annotations

import importlib
import subprocess
from functools import cache
from pathlib import Path

import pytest
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / "scripts" / "tools.sh"
CHART = ROOT / "deploy" / "helm" / "healthscore"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "healthscore.rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules" / "healthscore.rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "healthscore.json"
COMPOSE = ROOT / "docker-compose.yml"

# `healthscore <command>` -> the settings class that command reads.
SETTINGS_BY_COMMAND: dict[str, str] = {
    "ingest": "services.ingest.settings:IngestSettings",
    "scorer": "services.scorer.settings:ScorerSettings",
    "alerts": "services.alerts.settings:AlertsSettings",
    "api": "services.api.settings:ApiSettings",
    "topics": "healthscore.config:CommonSettings",
    "migrate": "healthscore.config:CommonSettings",
}


@cache
def tool(name: str) -> str:
    """Path of an ops tool, installing it first when missing (slow only the first time)."""
    done = subprocess.run(
        ["bash", str(TOOLS), name], capture_output=True, text=True, timeout=1200, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/tools.sh {name} failed:\n{done.stderr}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


def settings_class(command: str) -> type[BaseSettings]:
    module_name, _, class_name = SETTINGS_BY_COMMAND[command].partition(":")
    cls: object = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(cls, type)
    assert issubclass(cls, BaseSettings)
    return cls


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable a pydantic-settings class reads (upper case)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add((prefix + (field.alias or field_name)).upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(a.upper() for a in alias.choices if isinstance(a, str))
            names.update(str(a.path[0]).upper() for a in alias.choices if isinstance(a, AliasPath))
        else:
            names.add(str(alias.path[0]).upper())
    return names


def loopback_defaults(cls: type[BaseSettings]) -> set[str]:
    """Env names of settings whose default points at this machine (127.0.0.1 / localhost):
    inside a container or a pod those must be set explicitly."""
    found: set[str] = set()
    for field_name, field in cls.model_fields.items():
        default = str(field.default)
        if "127.0.0.1" in default or "localhost" in default:
            alias = field.validation_alias
            found.add(alias.upper() if isinstance(alias, str) else field_name.upper())
    return found
