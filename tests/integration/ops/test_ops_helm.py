"""The Helm chart lints, renders with default and production-like values, and every rendered
manifest validates against the Kubernetes OpenAPI schemas offline (kubernetes-validate, strict:
unknown fields are errors). Prometheus Operator objects, which those schemas do not cover, are
checked against what they carry: the PrometheusRule's groups are the repository's rules file and
pass `promtool check rules`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from ops_support import CHART, DASHBOARD, RULES, env_names, settings_class, tool

from healthscore.engine import parse_model
from services.alerts.config import parse_config

# The first run on a fresh machine installs the tools (helm builds from source: minutes).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

VALUES = {
    "default": [],
    "production": ["-f", str(CHART / "ci" / "production-values.yaml")],
}
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion >=1.25, we check from the
# oldest release still in wide use) and the newest the installed schemas know.
KUBE_VERSIONS = ("1.29.0", "1.36.0")
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
POD_KINDS = {"Deployment", "StatefulSet", "Job"}


def render(values: str, kube_version: str = "1.36.0") -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            tool("helm"),
            "template",
            "hs",
            str(CHART),
            "--kube-version",
            kube_version,
            *VALUES[values],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint_is_clean(values: str) -> None:
    done = subprocess.run(
        [tool("helm"), "lint", "--strict", str(CHART), *VALUES[values]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUES))
def test_rendered_manifests_validate_against_kubernetes_schemas(
    values: str, kube_version: str
) -> None:
    docs = render(values, kube_version)
    errors = []
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "StatefulSet",
        "Job",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    } <= kinds


def test_components_have_the_expected_workload_kinds() -> None:
    docs = render("production")
    deployments = {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}
    assert deployments == {"hs-healthscore-ingest", "hs-healthscore-alerts", "hs-healthscore-api"}
    (scorer,) = by_kind(docs, "StatefulSet")
    assert scorer["metadata"]["name"] == "hs-healthscore-scorer"
    assert scorer["spec"]["replicas"] == 6
    (claim,) = scorer["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(scorer)["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/var/lib/healthscore/scorer"

    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hs-healthscore-ingest",
    }
    ingest = next(
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("ingest")
    )
    assert "replicas" not in ingest["spec"], "the HPA owns the ingest replica count"

    (job,) = by_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = pod_spec(job)
    assert [c["args"] for c in spec["initContainers"]] == [["topics"]]
    assert [c["args"] for c in spec["containers"]] == [["migrate"]]


@pytest.mark.parametrize("values", sorted(VALUES))
def test_every_pod_runs_non_root_with_probes_resources_and_secret_by_reference(
    values: str,
) -> None:
    docs = render(values)
    secret = "healthscore" if values == "default" else "healthscore-production"
    assert not by_kind(docs, "Secret"), "the chart references an existing Secret, never makes one"
    for doc in (d for d in docs if d["kind"] in POD_KINDS):
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["automountServiceAccountToken"] is False
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert container["resources"]["requests"], where
            assert container["envFrom"] == [{"secretRef": {"name": secret}}], where
            for env in container["env"]:
                assert "valueFrom" in env or "SECRET" not in env["name"], where
            if doc["kind"] != "Job":
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where


@pytest.mark.parametrize("values", sorted(VALUES))
def test_pod_disruption_budgets_select_the_pods_they_protect(values: str) -> None:
    docs = render(values)
    workloads = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert len(pdbs) == len(workloads) == 4
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, pdb["metadata"]["name"]
    services = by_kind(docs, "Service")
    for service in services:
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
            for w in workloads
        ), service["metadata"]["name"]


@pytest.mark.parametrize("values", sorted(VALUES))
def test_chart_environment_is_what_the_services_read(values: str) -> None:
    """Component env must be read by that component; the chart-wide `env` (given to every
    container, like HEALTHSCORE_CLOCK) by at least one service."""
    docs = render(values)
    chart_wide = (
        set(yaml.safe_load(Path(VALUES[values][1]).read_text())["env"]) if VALUES[values] else set()
    )
    read_anywhere: set[str] = set()
    for doc in (d for d in docs if d["kind"] in POD_KINDS):
        spec = pod_spec(doc)
        for container in spec.get("initContainers", []) + spec["containers"]:
            command = container["args"][0]
            accepted = env_names(settings_class(command))
            read_anywhere |= accepted
            given = {e["name"] for e in container["env"]}
            unknown = given - accepted - chart_wide
            assert not unknown, f"{doc['metadata']['name']}/{command} sets {sorted(unknown)}"
            assert {"KAFKA_BOOTSTRAP_SERVERS", "HEALTHSCORE_TOPIC_PREFIX"} <= given
    assert chart_wide <= read_anywhere


def test_prometheus_rule_is_the_repository_rules_file(tmp_path: Path) -> None:
    assert (CHART / "files" / "healthscore.rules.yml").read_bytes() == RULES.read_bytes(), (
        "copy deploy/prometheus/rules/healthscore.rules.yml into the chart's files/"
    )
    assert (CHART / "files" / "healthscore-dashboard.json").read_bytes() == DASHBOARD.read_bytes()

    docs = render("production")
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    rendered = tmp_path / "rendered.rules.yml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(rendered)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["jobLabel"] == "healthscore.io/job"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    jobs = {s["metadata"]["labels"]["healthscore.io/job"] for s in by_kind(docs, "Service")}
    assert jobs == {f"healthscore-{c}" for c in ("ingest", "scorer", "alerts", "api")}


def test_config_maps_hold_valid_alert_rules_and_models() -> None:
    docs = render("production")
    maps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    rules = maps["hs-healthscore-alert-rules"]["rules.yaml"]
    config = parse_config(rules, slack_env_set=True)
    assert {d.name for d in config.destinations} == {"cs-alerts", "crm"}
    for name, text in maps["hs-healthscore-models"].items():
        assert parse_model(text).id == Path(name).stem
    dashboard = json.loads(maps["hs-healthscore-dashboard"]["healthscore.json"])
    assert dashboard["uid"] == "healthscore"

    alerts = next(
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("alerts")
    )
    spec = pod_spec(alerts)
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["alert-rules"] == "/etc/healthscore/alerts"
    assert "checksum/alert-rules" in alerts["spec"]["template"]["metadata"]["annotations"]
