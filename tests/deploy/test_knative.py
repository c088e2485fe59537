"""Knative manifests: strict schema validation of every rendered document, plus the rules the
schemas cannot express (references between objects, probes, concurrency, security, traffic).

Knative kinds are checked against the CRD schemas in knative/schemas/ made strict (unknown
fields rejected); core kinds with kubernetes-validate (strict). Overlays are rendered with
`kubectl kustomize` (offline); the base files are also checked as written.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KNATIVE = ROOT / "knative"
K8S_VERSION = "1.32.0"
FUNCTIONS = ("generate", "feedback", "maintenance", "ingest")
RESERVED_PORTS = {8012, 8013, 8022, 9090, 9091, 8008}
RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
TASKS = {"retention", "reindex", "verify_audit", "golden_eval", "fail_stale_runs", "requeue_stale_documents"}
DIGEST_IMAGE = re.compile(r"^[a-zA-Z0-9._\-/]+@sha256:[0-9a-f]{64}$")
SCHEMA_FILES = {
    ("serving.knative.dev/v1", "Service"): "knative-serving-service-v1.json",
    ("eventing.knative.dev/v1", "Broker"): "knative-eventing-broker-v1.json",
    ("eventing.knative.dev/v1", "Trigger"): "knative-eventing-trigger-v1.json",
    ("sources.knative.dev/v1", "PingSource"): "knative-sources-pingsource-v1.json",
    ("sources.knative.dev/v1", "SinkBinding"): "knative-sources-sinkbinding-v1.json",
}
CORE_KINDS = {"ConfigMap", "Secret", "NetworkPolicy", "ServiceAccount"}
# No CRD schema for EventPolicy is vendored: its required structure (eventing.knative.dev/v1alpha1), written
# here as strictly as the others: `to` and `from` entries are a ref or a selector / a ref or a sub.
_REF = {
    "type": "object",
    "required": ["apiVersion", "kind", "name"],
    "properties": {k: {"type": "string", "minLength": 1} for k in ("apiVersion", "kind", "name", "namespace")},
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "required": ["matchLabels"],
    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "matchLabels": {"type": "object"}},
    "additionalProperties": False,
}
EVENT_POLICY_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "eventing.knative.dev/v1alpha1"},
        "kind": {"const": "EventPolicy"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["from"],
            "properties": {
                "to": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"ref": _REF, "selector": _SELECTOR},
                        "additionalProperties": False,
                        "minProperties": 1,
                        "maxProperties": 1,
                    },
                },
                "from": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {"ref": _REF, "sub": {"type": "string", "minLength": 1}},
                        "additionalProperties": False,
                        "minProperties": 1,
                        "maxProperties": 1,
                    },
                },
                "filters": {"type": "array", "items": {"type": "object"}},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def strict(schema: dict) -> dict:
    """Reject unknown fields wherever the CRD lists properties and does not preserve unknowns."""
    schema = copy.deepcopy(schema)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for key in ("apiVersion", "kind", "metadata"):
        schema["properties"].setdefault(key, {"type": "object"} if key == "metadata" else {"type": "string"})
    walk(schema)
    return schema


@cache
def validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    raw = json.loads((KNATIVE / "schemas" / SCHEMA_FILES[api_version, kind]).read_text())
    return jsonschema.Draft7Validator(strict(raw))


def validate(doc: dict) -> None:
    """Raise if `doc` is not a valid resource of a kind Harvey uses."""
    key = (doc["apiVersion"], doc["kind"])
    if key in SCHEMA_FILES:
        validator(*key).validate(doc)
    elif doc["kind"] == "EventPolicy":
        jsonschema.Draft7Validator(EVENT_POLICY_SCHEMA).validate(doc)
    elif doc["kind"] in CORE_KINDS:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    else:
        raise AssertionError(f"unexpected kind {key} — add its schema or drop it")


def load_base() -> list[dict]:
    kustomization = yaml.safe_load((KNATIVE / "base" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((KNATIVE / "base" / name).read_text()) if d]
    return docs


@cache
def render(overlay: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (make tools installs it where a package provides it)")
    out = subprocess.run(
        [kubectl, "kustomize", str(KNATIVE / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def documents(source: str) -> list[dict]:
    return load_base() if source == "base" else list(render(source))


SOURCES = ["base", "staging", "production"]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def services(docs: list[dict]) -> dict[str, dict]:
    return {n: d for n, d in by_kind(docs, "Service").items() if d["apiVersion"].startswith("serving.")}


@pytest.mark.parametrize("source", SOURCES)
def test_every_document_is_schema_valid(source: str) -> None:
    docs = documents(source)
    assert docs
    for doc in docs:
        validate(doc)


def test_secret_template_is_valid_and_empty() -> None:
    path = KNATIVE / "base" / "secret.template.yaml"
    secret = yaml.safe_load(path.read_text())
    validate(secret)
    assert set(secret["stringData"]) == {
        "DATABASE_URL",
        "REDIS_URL",
        "QDRANT_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    }
    assert all(value == "" for value in secret["stringData"].values())
    kustomization = yaml.safe_load((KNATIVE / "base" / "kustomization.yaml").read_text())
    assert path.name not in kustomization["resources"], "an apply would blank the real Secret"


def test_strict_mode_rejects_typos() -> None:
    docs = load_base()
    service = copy.deepcopy(services(docs)["generate"])
    spec = service["spec"]["template"]["spec"]
    spec["timeoutSecond"] = spec.pop("timeoutSeconds")
    with pytest.raises(jsonschema.ValidationError, match="timeoutSecond"):
        validate(service)

    trigger = copy.deepcopy(by_kind(docs, "PingSource")["retention"])
    trigger["spec"]["schedul"] = trigger["spec"].pop("schedule")
    with pytest.raises(jsonschema.ValidationError, match="schedul"):
        validate(trigger)

    config = copy.deepcopy(by_kind(docs, "ConfigMap")["harvey-config"])
    config["datas"] = config.pop("data")
    with pytest.raises(jsonschema.ValidationError):
        validate(config)


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("source", SOURCES)
def test_function_services(source: str) -> None:
    docs = documents(source)
    accounts = by_kind(docs, "ServiceAccount")
    ksvcs = services(docs)
    assert set(FUNCTIONS) <= set(ksvcs)
    for name, ksvc in ksvcs.items():
        template = ksvc["spec"]["template"]
        spec = template["spec"]
        (container,) = spec["containers"]
        assert DIGEST_IMAGE.match(container["image"]), container["image"]
        assert not {p["containerPort"] for p in container.get("ports", [])} & RESERVED_PORTS
        assert not set(env_of(container)) & RESERVED_ENV, "Knative sets these itself"
        assert accounts[spec["serviceAccountName"]]["automountServiceAccountToken"] is False
        assert spec["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        annotations = template["metadata"]["annotations"]
        assert int(annotations["autoscaling.knative.dev/max-scale"]) <= 10
        if name not in FUNCTIONS:
            continue
        env = env_of(container)
        assert env["WORKERS"]["value"] == "1"
        threads = int(env["WORKERS"]["value"]) * int(env["THREADS"]["value"])
        in_flight = int(env["HARVEY_MAX_IN_FLIGHT"]["value"]) if "HARVEY_MAX_IN_FLIGHT" in env else threads
        assert spec["containerConcurrency"] == in_flight <= threads
        if name == "generate":  # spare threads answer 503 at once past the limit instead of queueing
            assert threads >= 2 * in_flight
        assert "timeoutSeconds" in spec and spec["timeoutSeconds"] <= 600
        assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
        ready, live = container["readinessProbe"], container["livenessProbe"]
        assert live["httpGet"] == {"path": "/healthz"}  # liveness: no I/O, never waits on warm-up
        assert ready["httpGet"] in ({"path": "/healthz"}, {"path": "/healthz?ready=1"})
        assert ready.get("initialDelaySeconds", 0) == 0
        assert container["envFrom"] == [{"configMapRef": {"name": "harvey-config"}}]
        for var in env.values():
            if "valueFrom" in var:
                assert var["valueFrom"]["secretKeyRef"]["name"] == "harvey-secrets"
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": "tmp", "emptyDir": spec["volumes"][0]["emptyDir"]} in spec["volumes"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "8080"
        assert image_name(container["image"]) == f"harvey-{name}"
    generate = ksvcs["generate"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert generate == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2000m", "memory": "4Gi"},
    }


def image_name(image: str) -> str:
    return image.split("@")[0].rsplit("/", 1)[1]


def test_scale_to_zero_except_production_generate() -> None:
    def min_scale(docs: list[dict]) -> dict[str, str]:
        return {
            name: ksvc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"]
            for name, ksvc in services(docs).items()
        }

    assert set(min_scale(load_base()).values()) == {"0"}
    assert set(min_scale(list(render("staging"))).values()) == {"0"}
    production = min_scale(list(render("production")))
    assert production.pop("generate") == "1"
    assert set(production.values()) == {"0"}


def test_production_pins_a_revision_and_tags_latest_at_zero() -> None:
    for name in FUNCTIONS:
        traffic = services(list(render("production")))[name]["spec"]["traffic"]
        assert {"tag": "current", "revisionName": f"{name}-00001", "percent": 100} in traffic
        assert {"tag": "latest", "latestRevision": True, "percent": 0} in traffic
        assert sum(t["percent"] for t in traffic) == 100
    assert all("traffic" not in s["spec"] for s in services(list(render("staging"))).values())


@pytest.mark.parametrize("source", SOURCES)
def test_eventing_references(source: str) -> None:
    docs = documents(source)
    ksvcs, brokers = services(docs), by_kind(docs, "Broker")
    service_ref = {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}
    broker_ref = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker"}

    def assert_delivery(delivery: dict) -> None:
        assert delivery["retry"] >= 1
        assert delivery["backoffPolicy"] == "exponential"
        assert re.fullmatch(r"PT\d+(\.\d+)?S", delivery["backoffDelay"])
        dls = delivery["deadLetterSink"]["ref"]
        assert dls.items() >= service_ref.items() and dls["name"] in ksvcs

    for broker in brokers.values():
        assert_delivery(broker["spec"]["delivery"])

    routes = {}
    for trigger in by_kind(docs, "Trigger").values():
        spec = trigger["spec"]
        assert spec["broker"] in brokers
        ref = spec["subscriber"]["ref"]
        assert ref.items() >= service_ref.items() and ref["name"] in ksvcs
        assert_delivery(spec["delivery"])
        routes[spec["filter"]["attributes"]["type"]] = ref["name"]
    assert routes == {
        "com.harvey.feedback.submitted": "feedback",
        "com.harvey.generate.requested": "generate",
        "com.harvey.document.submitted": "ingest",
        "dev.knative.sources.ping": "maintenance",
    }

    scheduled = set()
    for ping in by_kind(docs, "PingSource").values():
        spec = ping["spec"]
        sink = spec["sink"]["ref"]
        assert sink.items() >= broker_ref.items() and sink["name"] in brokers, "PingSource has no DLQ"
        assert spec["timezone"] == "America/Sao_Paulo"
        assert len(spec["schedule"].split()) == 5
        assert spec["contentType"] == "application/json"
        scheduled.add(json.loads(spec["data"])["task"])
    assert scheduled == TASKS

    bound = set()
    for binding in by_kind(docs, "SinkBinding").values():
        subject, sink = binding["spec"]["subject"], binding["spec"]["sink"]["ref"]
        assert subject.items() >= service_ref.items() and subject["name"] in ksvcs
        assert sink.items() >= broker_ref.items() and sink["name"] in brokers
        bound.add(subject["name"])
    assert bound == set(FUNCTIONS)


def test_network_policies_and_no_rbac() -> None:
    docs = load_base()
    assert not {d["kind"] for d in docs} & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress_ports = {
        p["port"] for pol in policies.values() for rule in pol["spec"].get("ingress", []) for p in rule["ports"]
    }
    egress_ports = {
        p["port"] for pol in policies.values() for rule in pol["spec"].get("egress", []) for p in rule["ports"]
    }
    assert ingress_ports == {8012, 8013, 8022, 9090, 9091, 8080}
    assert egress_ports == {53, 5432, 6379, 6333, 6334, 443, 8080}
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for pol in policies.values()
        for rule in pol["spec"].get("ingress", [])
        for peer in rule["from"]
    }
    assert sources == {"knative-serving", "kourier-system", "knative-eventing", "monitoring"}


def effective_env(docs: list[dict], container: dict) -> dict[str, str]:
    """What a container sees: its ConfigMaps' data, overridden by its own `env` values."""
    configmaps = by_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    env.update({name: var["value"] for name, var in env_of(container).items() if "value" in var})
    return env


def trigger_oidc_subject(namespace: str, trigger: str) -> str:
    """The identity a Broker delivers a Trigger's events with (Knative's per-Trigger OIDC ServiceAccount)."""
    return f"system:serviceaccount:{namespace}:{trigger}-oidc-eventing.knative.dev-trigger"


@pytest.mark.parametrize("source", SOURCES)
def test_every_service_keeps_event_authentication_on(source: str) -> None:
    docs = documents(source)
    for name, ksvc in services(docs).items():
        (container,) = ksvc["spec"]["template"]["spec"]["containers"]
        env = effective_env(docs, container)
        assert env.get("HARVEY_EVENTS_AUTH", "oidc") == "oidc", name
        if name in FUNCTIONS:
            assert env["HARVEY_EVENTS_OIDC_ISSUER"].startswith("https://"), name
            assert env["HARVEY_EVENTS_OIDC_AUDIENCE"], name


@pytest.mark.parametrize("source", SOURCES)
def test_each_event_receiving_service_takes_events_only_from_its_trigger(source: str) -> None:
    docs = documents(source)
    ksvcs, policies = services(docs), by_kind(docs, "EventPolicy")
    known = {(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs}
    for policy in policies.values():
        validate(policy)
        for entry in policy["spec"]["to"] + policy["spec"]["from"]:
            ref = entry["ref"]
            assert (ref["apiVersion"], ref["kind"], ref["name"]) in known, f"{policy['metadata']['name']}: {ref}"
    receivers = {t["spec"]["subscriber"]["ref"]["name"]: t for t in by_kind(docs, "Trigger").values()}
    assert set(receivers) == set(FUNCTIONS)
    for name, trigger in receivers.items():
        covering = [p for p in policies.values() if {"ref": service_ref(name)} in p["spec"]["to"]]
        assert len(covering) == 1, f"{name} needs exactly one EventPolicy"
        trigger_ref = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "name": trigger["metadata"]["name"]}
        assert covering[0]["spec"]["from"] == [{"ref": trigger_ref}]
        (container,) = ksvcs[name]["spec"]["template"]["spec"]["containers"]
        env = effective_env(docs, container)
        assert trigger["spec"]["subscriber"]["audience"] == env["HARVEY_EVENTS_OIDC_AUDIENCE"]
        if source != "base":
            namespace = ksvcs[name]["metadata"]["namespace"]
            expected = trigger_oidc_subject(namespace, trigger["metadata"]["name"])
            assert env["HARVEY_EVENTS_ALLOWED_SUBJECTS"] == expected
    audiences = [t["spec"]["subscriber"]["audience"] for t in receivers.values()]
    assert len(set(audiences)) == len(audiences), "a token for one function must not be accepted by another"


def service_ref(name: str) -> dict[str, str]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}


def test_strict_mode_rejects_event_policy_typos() -> None:
    policy = copy.deepcopy(by_kind(load_base(), "EventPolicy")["feedback-events"])
    validate(policy)
    policy["spec"]["form"] = policy["spec"].pop("from")
    with pytest.raises(jsonschema.ValidationError):
        validate(policy)


def test_the_cluster_feature_flags_enable_oidc() -> None:
    config = yaml.safe_load((KNATIVE / "cluster" / "config-features.yaml").read_text())
    validate(config)
    assert config["metadata"] == {"name": "config-features", "namespace": "knative-eventing"}
    assert config["data"]["authentication-oidc"] == "enabled"
    assert config["data"]["transport-encryption"] in {"permissive", "strict"}


def broker_audience(namespace: str, broker: str) -> str:
    """The OIDC audience Knative gives a Broker: group/kind/namespace/name, lower case."""
    return f"eventing.knative.dev/broker/{namespace}/{broker}"


@pytest.mark.parametrize("source", SOURCES)
def test_every_function_sends_its_events_with_a_token_for_its_namespaces_broker(source: str) -> None:
    docs = documents(source)
    ksvcs = services(docs)
    bindings = by_kind(docs, "SinkBinding").values()
    sinks = {b["spec"]["subject"]["name"]: b["spec"]["sink"]["ref"]["name"] for b in bindings}
    for name in FUNCTIONS:
        ksvc = ksvcs[name]
        spec = ksvc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == "broker-token"]
        (projection,) = volume["projected"]["sources"]
        token = projection["serviceAccountToken"]
        namespace = ksvc["metadata"]["namespace"] if source != "base" else "NAMESPACE"
        assert token["audience"] == broker_audience(namespace, sinks[name]), name
        assert 600 <= token["expirationSeconds"] <= 24 * 3600, "the kubelet's bounds for a projected token"
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "broker-token"]
        assert mount["readOnly"] is True
        env = effective_env(docs, container)
        assert env["HARVEY_EVENTS_SINK_TOKEN_FILE"] == f"{mount['mountPath']}/{token['path']}", name
        assert spec["automountServiceAccountToken"] is False, "the Broker token is not an API credential"


def test_strict_mode_rejects_a_typo_in_the_projected_token() -> None:
    service = copy.deepcopy(services(load_base())["feedback"])
    (volume,) = [v for v in service["spec"]["template"]["spec"]["volumes"] if v["name"] == "broker-token"]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    validate(service)
    token["audiance"] = token.pop("audience")
    with pytest.raises(jsonschema.ValidationError, match="audiance"):
        validate(service)
