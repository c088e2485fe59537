"""Monitoring: Prometheus rules (promtool check + unit tests), scrape configuration and the
Grafana dashboards' PromQL. Needs `promtool` (Debian package prometheus, `make tools`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "monitoring" / "prometheus"
RULES = PROM / "rules" / "harvey.rules.yml"
DASHBOARDS = ROOT / "monitoring" / "grafana" / "dashboards"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
REQUIRED_ALERTS = {
    "HarveyBackendDown": ("1m", "up{"),
    "HarveyHighLatency": ("5m", "> 5"),
    "HarveyHighErrorRate": ("5m", "> 0.05"),
    "HarveyHighCPU": ("5m", "> 0.8"),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not installed: run `make tools` (apt-get install prometheus)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted((PROM / "tests").glob("*.test.yml")), ids=lambda p: p.name)
def test_rules_unit_tests(test_file: Path) -> None:
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, set[bool]] = {}
    for test_file in (PROM / "tests").glob("*.test.yml"):
        for test in yaml.safe_load(test_file.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert {rule["alert"]: {True, False} for rule in alerts()} == cases


def test_alert_contract() -> None:
    rules = {rule["alert"]: rule for rule in alerts()}
    for name, (duration, fragment) in REQUIRED_ALERTS.items():
        assert rules[name]["for"] == duration
        assert fragment in rules[name]["expr"]
    anchors = runbook_anchors()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"sev1", "sev2", "sev3"}, name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        url = rule["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("docs/RUNBOOK.md"), url
        assert url.split("#")[1] in anchors, f"{name}: no section #{url.split('#')[1]} in docs/RUNBOOK.md"
    assert "absent(" not in rules["HarveyBackendDown"]["expr"], "scale to zero is not an outage"


def without_kubernetes_sd(config: dict) -> dict:
    """Debian's Prometheus is built without Kubernetes discovery; check the rest of each job."""
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["sd.invalid:80"]}]
    return config


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.dev.yml"])
def test_scrape_config_passes_promtool(name: str, tmp_path: Path) -> None:
    config = without_kubernetes_sd(yaml.safe_load((PROM / name).read_text()))
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    (tmp_path / name).write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(tmp_path / name))
    assert result.returncode == 0, result.stdout + result.stderr


def relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus relabelling, for the keep and replace actions the scrape config uses."""
    labels = dict(labels)
    for config in configs:
        value = config.get("separator", ";").join(labels.get(name, "") for name in config["source_labels"])
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        if config.get("action", "replace") == "keep":
            if not match:
                return None
        elif match:
            replacement = re.sub(r"\$(\d+)", r"\\\1", config.get("replacement", "$1"))
            labels[config["target_label"]] = match.expand(replacement)
    return {k: v for k, v in labels.items() if not k.startswith("__meta_")}


def sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def test_pod_discovery_keeps_only_the_function_container() -> None:
    """Feed the relabelling the targets Kubernetes SD makes for a Knative pod of each rendered Service."""
    jobs = {job["job_name"]: job for job in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]}
    relabel_configs = jobs["harvey-functions"]["relabel_configs"]
    for path in (ROOT / "knative" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] != "Service" or doc["metadata"]["name"] == "dead-letter":
                continue
            name, meta = doc["metadata"]["name"], doc["spec"]["template"]["metadata"]
            pod_labels = {
                **meta["labels"],
                "serving.knative.dev/service": name,
                "serving.knative.dev/revision": f"{name}-00001",
            }
            pod = {
                "__meta_kubernetes_namespace": "harvey-production",
                "__meta_kubernetes_pod_name": f"{name}-00001-deployment-x",
                "__meta_kubernetes_pod_ip": "10.1.2.3",
                "__meta_kubernetes_pod_phase": "Running",
                **{f"__meta_kubernetes_pod_label_{sanitize(k)}": v for k, v in pod_labels.items()},
                **{f"__meta_kubernetes_pod_annotation_{sanitize(k)}": v for k, v in meta["annotations"].items()},
            }
            ports = [("user-container", 8080), *[("queue-proxy", p) for p in (8012, 8022, 9090, 9091)]]
            targets = [
                relabel(
                    {
                        **pod,
                        "__address__": f"10.1.2.3:{port}",
                        "__metrics_path__": "/metrics",
                        "__meta_kubernetes_pod_container_name": container,
                    },
                    relabel_configs,
                )
                for container, port in ports
            ]
            kept = [t for t in targets if t is not None]
            assert kept == [
                {
                    "__address__": "10.1.2.3:8080",
                    "__metrics_path__": "/metrics",
                    "namespace": "harvey-production",
                    "pod": f"{name}-00001-deployment-x",
                    "service": name,
                    "revision": f"{name}-00001",
                }
            ]


def grafana_to_promql(expr: str) -> str:
    for variable, value in {
        "$__rate_interval": "5m",
        "$__range": "1d",
        "$__interval": "1m",
        "$namespace": ".*",
    }.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_dashboards(tmp_path: Path) -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert [f.stem for f in files] == ["aplicacao", "infraestrutura", "negocio", "sistema"]
    uids, rules = [], []
    for path in files:
        dashboard = json.loads(path.read_text())
        uids.append(dashboard["uid"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        panel_ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(panel_ids) == len(set(panel_ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                rules.append(
                    {
                        "record": f"dashboard:{path.stem}:{len(rules)}",
                        "expr": grafana_to_promql(target["expr"]),
                    }
                )
    assert uids == ["harvey-aplicacao", "harvey-infraestrutura", "harvey-negocio", "harvey-sistema"]
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_exported_metric_is_on_a_dashboard() -> None:
    """A metric nobody plots is found only during an incident, when its series has long vanished."""
    from harvey import metrics
    from harvey.ops import tasks
    from prometheus_client.metrics import MetricWrapperBase

    exported = [m for m in [*vars(metrics).values(), tasks.RUNS] if isinstance(m, MetricWrapperBase)]
    assert len(exported) >= 16
    exprs = " ".join(
        target["expr"]
        for path in DASHBOARDS.glob("*.json")
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    )
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {rule["record"]: rule["expr"] for group in groups for rule in group["rules"] if "record" in rule}
    exprs += " ".join(expr for record, expr in recorded.items() if record in exprs)
    used = set(re.findall(r"\b([a-z_]+?)(?:_total|_bucket|_sum|_count)?\{", exprs))
    assert {m._name for m in exported} - used == set()
