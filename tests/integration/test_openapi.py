"""Each function's OpenAPI document is valid, committed as served, and covers what it answers.

The coverage check reads the process's own `http_requests_total` samples: every (route, method,
status) any test in this process made a function answer must be documented for that operation, so
a new status in a handler without a line in its `Route` fails here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from functions_framework import create_app
from harvey import api
from harvey.edge.openapi import document
from openapi_spec_validator import validate
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def apps():
    return {name: create_app(name, f"functions/{name}/main.py").test_client() for name in api.FUNCTIONS}


@pytest.mark.parametrize("name", api.FUNCTIONS)
def test_the_served_document_is_valid_openapi_and_is_the_committed_one(apps, name):
    served = apps[name].get("/openapi.json")
    assert served.status_code == 200
    validate(served.get_json())
    committed = json.loads((ROOT / "docs" / "openapi" / f"{name}.json").read_text(encoding="utf-8"))
    assert served.get_json() == committed, "run `harvey openapi` and commit docs/openapi/"


def test_the_check_mode_of_the_command_finds_a_stale_document(tmp_path):
    from harvey.cli.openapi import openapi

    assert CliRunner().invoke(openapi, ["--out", str(tmp_path)]).exit_code == 0
    assert CliRunner().invoke(openapi, ["--out", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "feedback.json").write_text("{}", encoding="utf-8")
    stale = CliRunner().invoke(openapi, ["--out", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "feedback.json" in stale.output


@pytest.mark.parametrize("name", api.FUNCTIONS)
def test_every_route_and_its_auth_are_documented(name):
    function = api.load(name)
    paths = document(function)["paths"]
    for route in function.routes.routes:
        path = route.path.replace("<", "{").replace(">", "}")
        operation = paths[path][route.method.lower()]
        assert {next(iter(s)) for s in operation.get("security", [])} == {
            {"bearer": "apiKey", "event": "eventSender", "review": "reviewLink"}[a] for a in route.auth
        }
    for rule in function.routes.map.iter_rules():
        assert rule.rule.replace("<", "{").replace(">", "}") in paths


def _exercise(apps, make_tenant) -> None:
    """Requests that make each function answer its usual statuses (the rest of the suite adds more)."""
    _, key = make_tenant()
    bearer = {"Authorization": f"Bearer {key}"}
    for client in apps.values():
        client.get("/healthz")
        client.get("/metrics")
        client.post("/", json={})  # 401 (or 400 for maintenance, which takes only events)
        client.post("/", data="{", headers={**bearer, "Content-Type": "application/json"})  # 400
    apps["generate"].get(f"/runs/{uuid.uuid4()}", headers=bearer)  # 404
    apps["feedback"].post("/", json={"run_id": str(uuid.uuid4()), "rating": 1}, headers=bearer)  # 404
    apps["feedback"].get(f"/runs/{uuid.uuid4()}/summary", headers=bearer)  # 404
    apps["feedback"].get("/analytics?since=yesterday", headers=bearer)  # 400
    apps["feedback"].get("/analytics", headers=bearer)  # 200


def test_every_status_a_function_answered_is_in_its_document(apps, make_tenant):
    _exercise(apps, make_tenant)
    documented = {name: document(api.load(name))["paths"] for name in api.FUNCTIONS}
    answered = [
        sample.labels
        for metric in REGISTRY.collect()
        if metric.name == "http_requests"
        for sample in metric.samples
        if sample.name == "http_requests_total" and sample.value > 0
    ]
    missing = []
    for labels in answered:
        paths = documented.get(labels["function"])
        if paths is None or labels["route"] == "unmatched":
            continue  # a test's own probe function; or a path/method no route has (404/405 by the router)
        operation = paths[labels["route"].replace("<", "{").replace(">", "}")].get(labels["method"].lower())
        if operation is None or labels["status"] not in operation["responses"]:
            missing.append(f"{labels['function']} {labels['method']} {labels['route']} → {labels['status']}")
    assert len(answered) > 10
    assert not missing, "answered but not documented:\n" + "\n".join(sorted(set(missing)))
