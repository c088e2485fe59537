"""The attacker's probe, kept: hypothesis fuzzing of all three functions through their real apps.

Every request is hostile in some way (wrong types, NUL, lone surrogates, invalid UTF-8, deep
nesting, junk headers and paths, forged CloudEvents). Whatever is sent, the answer is below 500,
every error is the one JSON error shape without internals, and the worker's database connection
still answers the next, valid request correctly and for the right tenant: the test client runs on
the test thread, so a poisoned per-thread connection shows up in the check that follows.

Bounded for `make test`; `HYPOTHESIS_PROFILE=long` (`make fuzz`) runs thousands of examples.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

settings.register_profile(
    "harvey-fuzz",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("long", parent=settings.get_profile("harvey-fuzz"), max_examples=2500, derandomize=False)
FUZZ = settings.get_profile("long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "harvey-fuzz")

LEAKS = re.compile(
    r"Traceback|File \"|/work/|site-packages|\.py\b.*line \d|127\.0\.0\.1|localhost:\d|:5432|:6379"
    r"|\bSELECT\b|\bINSERT\b|\bUPDATE\b.*\bSET\b|pg8000|psycopg|SQLSTATE|sqlstate",
)
CE_TYPES = {
    "generate": "com.harvey.generate.requested",
    "feedback": "com.harvey.feedback.submitted",
    "maintenance": "dev.knative.sources.ping",
}

# --- strategies -----------------------------------------------------------------------------------------

POISON = st.sampled_from(["\x00", "\ud800", "\udfff", "a\x00b", "x\ud83d", "\ufeff", "\u202e", "\U0001f642"])
TEXT = st.one_of(
    st.text(max_size=40),
    POISON,
    st.builds(lambda a, p, b: a + p + b, st.text(max_size=10), POISON, st.text(max_size=10)),
    st.sampled_from(["", " ", "null", "'; DROP TABLE runs; --", "../../etc/passwd", "%00", "x" * 5000, "0" * 4400]),
)
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
HOSTILE_BODIES = st.one_of(
    st.sampled_from(
        [
            b"[" * 40000,
            b'{"a":' * 20000,
            b'{"task": "\xff\xfe"}',
            b"\xef\xbb\xbf{}",
            b"",
            b"null",
            b"[]",
            b'"a string"',
            b"1" * 5000,
            b'{"top_k": ' + b"9" * 5000 + b"}",
            b'{"rating": NaN, "top_k": Infinity}',
            b'{"top_k": 1e999}',
            b"\x00",
            b'{"task": "\\ud800", "run_id": "\\udfff"}',
            b'{"task": "\\u0000"}',
            b'{"a": 1, "a": 2}',
            b"{" + b" " * 70000 + b"}",
        ]
    ),
    st.binary(max_size=300),
)
HEADER_TEXT = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=60) | st.sampled_from(
    ["\x00", "a\x00b", "é", "x" * 3000]
)


def _mutate(valid: dict[str, Any], fields: list[str]):
    """A valid body with up to four fields replaced by junk, dropped, or junk fields added."""

    @st.composite
    def build(draw) -> dict[str, Any]:
        body = dict(valid)
        for _ in range(draw(st.integers(0, 4))):
            op = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
            name = draw(st.sampled_from(fields))
            if op == "replace":
                body[name] = draw(JUNK)
            elif op == "drop":
                body.pop(name, None)
            else:
                body[draw(TEXT)] = draw(JUNK)
        return body

    return build()


def _encode(bodies):
    """JSON as a client would send it (ASCII escapes, raw UTF-8 with surrogates passed through) or hostile bytes."""
    return st.one_of(
        bodies.map(lambda b: json.dumps(b).encode()),
        bodies.map(lambda b: json.dumps(b, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        HOSTILE_BODIES,
    )


def _auth(key: str):
    return st.one_of(
        st.sampled_from(
            [
                None,
                f"Bearer {key}",
                f"bearer {key}",
                f"Bearer  {key} ",
                "Bearer hv_garbage",
                "Bearer",
                "Bearer ",
                "Basic dXNlcjpwYXNz",
                f"Bearer {key}\x00",
                f"Bearer {key[:-1]}",
                "Bearer hv_" + "a" * 3000,
            ]
        ),
        HEADER_TEXT.map(lambda t: f"Bearer {t}"),
        HEADER_TEXT,
    )


CE_ATTRIBUTE = st.one_of(TEXT, st.none(), st.integers(), st.lists(TEXT, max_size=2), st.dictionaries(TEXT, TEXT))


def _structured(kind: str, data):
    """A structured-mode CloudEvent whose attributes may be null, numbers, lists, NUL or surrogates."""
    return st.fixed_dictionaries(
        {
            "specversion": st.sampled_from(["1.0", "1.0", "0.3"]) | CE_ATTRIBUTE,
            "id": st.uuids().map(str) | CE_ATTRIBUTE,
            "source": st.just("/fuzz") | CE_ATTRIBUTE,
            "type": st.just(CE_TYPES[kind]) | CE_ATTRIBUTE,
            "datacontenttype": st.just("application/json"),
            "data": data | JUNK,
        }
    )


def _binary_headers(kind: str):
    return st.fixed_dictionaries(
        {
            "ce-specversion": st.sampled_from(["1.0", "1.0", "0.3"]) | HEADER_TEXT,
            "ce-id": st.uuids().map(str) | HEADER_TEXT,
            "ce-source": st.just("/fuzz") | HEADER_TEXT,
            "ce-type": st.just(CE_TYPES[kind]) | HEADER_TEXT,
            "Content-Type": st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain"]),
        }
    )


def _event(kind: str, data):
    """(headers, body bytes) of a binary- or structured-mode event around `data` (a strategy of dicts)."""
    binary = st.tuples(_binary_headers(kind), _encode(data))
    structured = st.tuples(
        st.just({"Content-Type": "application/cloudevents+json"}),
        _encode(_structured(kind, data)),
    )
    return binary | structured


OVERFLOWING_SINCE = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01",
    "9999-12-31",
    "0000-00-00",
    "2026-13-45",
    "2026-01-01T00:00:00+99:00",
    "-1",
    "1" * 400,
    "2026-01-01\x00",
    "now",
]


def _paths(kind: str):
    junk = st.one_of(
        TEXT,
        st.sampled_from(["\n", "a\tb", "\r", "..", "%", "\\", "\x7f"]),
        st.uuids().map(lambda u: f"urn:uuid:{u}"),
        st.uuids().map(lambda u: f"{{{u}}}"),
    )
    quoted = junk.map(lambda t: quote(t, safe="", errors="surrogatepass"))
    common = [
        quoted.map(lambda t: f"/{t}"),
        quoted.map(lambda t: f"/healthz?deep={t}"),
        st.just("/metrics"),
    ]
    if kind == "generate":
        return st.one_of(quoted.map(lambda t: f"/runs/{t}"), st.uuids().map(lambda u: f"/runs/{u}"), *common)
    return st.one_of(
        quoted.map(lambda t: f"/runs/{t}/summary"),
        st.uuids().map(lambda u: f"/runs/{u}/summary"),
        st.sampled_from(OVERFLOWING_SINCE).map(lambda s: f"/analytics?since={quote(s, safe='')}"),
        quoted.map(lambda t: f"/analytics?since={t}"),
        *common,
    )


# --- the world every request is checked against --------------------------------------------------------


@dataclass
class World:
    clients: dict[str, Any]
    victim_key: str  # tenant A: only the post-request checks use its key
    victim_id: str
    victim_run: str
    attacker_key: str  # tenant B: the fuzzed requests' valid key
    attacker_id: str
    attacker_run: str


@pytest.fixture(scope="module")
def world(harvey_env):
    from functions_framework import create_app
    from harvey.config import get_settings
    from harvey.drafting import runs
    from harvey.store import feedback, tenants

    previous = os.environ.get("HARVEY_EVENTS_AUTH")
    os.environ["HARVEY_EVENTS_AUTH"] = "none"
    get_settings.cache_clear()
    job = runs.parse({"doc_type": "parecer", "task": "Prazo para reclamar de vício de produto durável"}, None)
    made = []
    for role in ("victim", "attacker"):
        tenant, key = tenants.create(f"fuzz-{role}-{uuid.uuid4().hex[:8]}")
        run_id = str(uuid.uuid4())
        runs.create(tenant, job, run_id=run_id, origin="sync", status="succeeded")
        made.append((tenant.id, key, run_id))
    (victim_id, victim_key, victim_run), (attacker_id, attacker_key, attacker_run) = made
    feedback.record(victim_id, {"run_id": victim_run, "rating": 1})
    clients = {kind: create_app(kind, f"functions/{kind}/main.py").test_client() for kind in CE_TYPES}
    yield World(clients, victim_key, victim_id, victim_run, attacker_key, attacker_id, attacker_run)
    if previous is None:
        os.environ.pop("HARVEY_EVENTS_AUTH", None)
    else:
        os.environ["HARVEY_EVENTS_AUTH"] = previous
    get_settings.cache_clear()


def _reproducer(kind: str, method: str, path: str, headers: dict, body: bytes | None, response) -> str:
    return (
        f"function={kind} method={method} path={path!r}\nheaders={headers!r}\nbody={(body or b'')[:300]!r}"
        f" ({len(body or b'')} bytes)\nstatus={response.status_code} content-type={response.content_type!r}\n"
        f"answer={response.get_data()[:400]!r}"
    )


def problems(response, *, event: bool, method: str, path: str) -> list[str]:
    """What is wrong with an answer to a hostile request (empty: nothing)."""
    found = []
    status = response.status_code
    raw = response.get_data()
    if status >= 500:
        found.append(f"{status} answer")
    if LEAKS.search(raw.decode("utf-8", "replace")):
        found.append("the answer reveals internals")
    if method == "HEAD" or (event and status < 300 and not raw) or (path == "/metrics" and status == 200):
        return found
    if response.mimetype != "application/json":
        return [*found, f"content type {response.content_type!r}, not JSON"]
    try:
        body = json.loads(raw)
    except ValueError:
        return [*found, "the body is not JSON"]
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or error.get("status") != status or not isinstance(error.get("message"), str):
            found.append("not the error shape {'error': {'status', 'message'}}")
    return found


def send(world: World, kind: str, method: str, path: str, headers: dict, body: bytes | None = None) -> None:
    """One hostile request, its answer checked, then the valid requests that prove nothing was poisoned."""
    headers = {k: v for k, v in headers.items() if v is not None}
    response = world.clients[kind].open(path, method=method, headers=headers, data=body)
    event = "ce-specversion" in headers or "cloudevents" in headers.get("Content-Type", "")
    found = problems(response, event=event, method=method, path=path)
    assert not found, f"{found}\n{_reproducer(kind, method, path, headers, body, response)}"
    unpoisoned(world, after=_reproducer(kind, method, path, headers, body, response))


def unpoisoned(world: World, after: str = "") -> None:
    """The victim's own run and feedback, read on this thread's connection, are the victim's; a garbage
    key stores nothing; the attacker's key never sees the victim's run."""
    victim = {"Authorization": f"Bearer {world.victim_key}"}
    generate, feedback = world.clients["generate"], world.clients["feedback"]
    run = generate.get(f"/runs/{world.victim_run}", headers=victim)
    assert run.status_code == 200 and run.get_json()["run_id"] == world.victim_run, f"{run.data[:300]!r} after\n{after}"
    summary = feedback.get(f"/runs/{world.victim_run}/summary", headers=victim)
    assert summary.status_code == 200, f"{summary.data[:300]!r} after\n{after}"
    assert summary.get_json()["count"] == 1, f"the victim's feedback changed after\n{after}"
    garbage = feedback.post(
        "/", json={"run_id": world.victim_run, "rating": -1}, headers={"Authorization": "Bearer hv_garbage"}
    )
    assert garbage.status_code == 401, f"a garbage key got {garbage.status_code} after\n{after}"
    foreign = generate.get(f"/runs/{world.victim_run}", headers={"Authorization": f"Bearer {world.attacker_key}"})
    assert foreign.status_code == 404, f"the attacker saw the victim's run ({foreign.status_code}) after\n{after}"


# --- the fuzz tests ------------------------------------------------------------------------------------

GENERATE_VALID = {
    "doc_type": "parecer",
    "task": "Prazo para reclamar de vício de produto durável",
    "facts": "O consumidor comprou uma geladeira que parou após 60 dias.",
    "parties": {"autor": "Fulano", "réu": "Loja"},
    "top_k": 3,
    "user_id": "u-1",
}
FEEDBACK_FIELDS = ["run_id", "rating", "comment", "error_spans", "missing_sources", "edited_text_md", "tags", "user_id"]
MAINTENANCE_FIELDS = ["task", "dry_run", "tenant", "tenant_id", "document_id", "budget_s"]


def _feedback_valid(run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "rating": -1,
        "comment": "faltou o art. 26",
        "tags": ["prazo"],
        "user_id": "u-1",
        "missing_sources": [{"raw": "CDC art. 26", "class": "legislacao"}],
    }


def test_valid_requests_pass_the_checks(world):
    unpoisoned(world)
    key = {"Authorization": f"Bearer {world.attacker_key}", "Content-Type": "application/json"}
    send(world, "feedback", "POST", "/", key, json.dumps(_feedback_valid(world.attacker_run)).encode())
    send(world, "feedback", "GET", "/analytics?since=2026-01-01", key)


@FUZZ
@given(data=st.data())
def test_hostile_http_requests_to_generate_get_json_4xx_and_poison_nothing(world, data):
    body = data.draw(_encode(_mutate(GENERATE_VALID, list(GENERATE_VALID))))
    headers = {
        "Authorization": data.draw(_auth(world.attacker_key)),
        "Content-Type": data.draw(st.sampled_from(["application/json", "text/plain", None])),
        "X-Request-Id": data.draw(st.none() | HEADER_TEXT),
    }
    send(world, "generate", "POST", "/", headers, body)


@FUZZ
@given(data=st.data())
def test_hostile_http_requests_to_feedback_get_json_4xx_and_poison_nothing(world, data):
    valid = _feedback_valid(world.attacker_run)
    valid["error_spans"] = [{"start": 0, "end": 5, "label": "titulo"}]
    body = data.draw(_encode(_mutate(valid, FEEDBACK_FIELDS)))
    headers = {
        "Authorization": data.draw(_auth(world.attacker_key)),
        "Content-Type": data.draw(st.sampled_from(["application/json", "text/plain", None])),
        "Idempotency-Key": data.draw(st.none() | HEADER_TEXT),
    }
    send(world, "feedback", "POST", "/", headers, body)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(list(CE_TYPES)))
def test_forged_cloudevents_get_json_4xx_or_an_empty_ack_and_poison_nothing(world, data, kind):
    if kind == "generate":
        valid: dict[str, Any] = {"tenant_id": world.attacker_id, **GENERATE_VALID}
        fields = ["tenant_id", *GENERATE_VALID]
    elif kind == "feedback":
        valid, fields = {"tenant_id": world.attacker_id, **_feedback_valid(world.attacker_run)}, FEEDBACK_FIELDS
    else:  # cheap tasks, always scoped to the attacker: reindex or purge of everyone would slow the suite
        task = data.draw(st.sampled_from(["verify_audit", "fail_stale_runs", "purge_document", "reindex"]))
        valid, fields = {"task": task, "tenant_id": world.attacker_id, "dry_run": True}, MAINTENANCE_FIELDS
    mutated = _mutate(valid, fields)
    if kind == "maintenance":
        mutated = mutated.map(
            lambda d: d
            if isinstance(d.get("tenant_id"), str) or isinstance(d.get("tenant"), str)
            else {**d, "tenant_id": world.attacker_id}
        )
    headers, body = data.draw(_event(kind, mutated))
    send(world, kind, "POST", "/", headers, body)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["generate", "feedback", "maintenance"]))
def test_junk_paths_and_methods_get_json_4xx_and_poison_nothing(world, data, kind):
    path = data.draw(_paths("generate" if kind == "generate" else "feedback"))
    method = data.draw(st.sampled_from(["GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]))
    headers = {"Authorization": data.draw(_auth(world.attacker_key))}
    send(world, kind, method, path, headers, b"{}" if method in ("POST", "PUT", "PATCH") else None)


@pytest.mark.parametrize("since", OVERFLOWING_SINCE)
def test_overflowing_analytics_dates_are_refused_without_poisoning_the_connection(world, since):
    headers = {"Authorization": f"Bearer {world.attacker_key}"}
    send(world, "feedback", "GET", f"/analytics?since={quote(since, safe='')}", headers)
