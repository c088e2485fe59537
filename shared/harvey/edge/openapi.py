"""OpenAPI 3.1 documents, generated from each function's routes and the pydantic models they name.

The document is the contract integrators read: it is served at `GET /openapi.json`, committed under
docs/openapi/ (`harvey openapi --out docs/openapi`), and a test checks that every route and status a
function answers is in it. It is built from the same `Route` objects that route requests, so the two
cannot drift.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from harvey.edge.http import BUILT_IN, Function, Route
from harvey.schemas import ErrorBody

_PATH_ARG = re.compile(r"<(?:\w+:)?(\w+)>")
SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "The tenant's API key (`harvey tenant create`)."},
    "eventSender": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A Knative Eventing OIDC token of an allowed sender (HARVEY_EVENTS_OIDC_*), on CloudEvents.",
    },
    "reviewLink": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The signed, expiring token of a review link (HARVEY_REVIEW_SECRET), scoped to one run.",
    },
}
_AUTH = {"bearer": "apiKey", "event": "eventSender", "review": "reviewLink"}
# Statuses every authenticated operation may answer besides its own, and why.
_COMMON = {
    401: "No, an unknown or an invalid credential.",
    429: "The tenant's requests-per-minute limit (Retry-After says when to retry).",
    500: "An unexpected error: the body quotes a request_id, never internals.",
    503: "A store is unreachable or this instance is at its in-flight limit (Retry-After).",
}


def _path(template: str) -> str:
    return _PATH_ARG.sub(r"{\1}", template)


Mode = Literal["validation", "serialization"]


def _models(function: Function) -> list[tuple[type[BaseModel], Mode]]:
    found: dict[tuple[type[BaseModel], Mode], None] = {(ErrorBody, "serialization"): None}
    for route in function.routes.routes:
        if route.body is not None and issubclass(route.body, BaseModel):
            found[(route.body, "validation")] = None
        for answer in route.responses.values():
            if isinstance(answer, type) and issubclass(answer, BaseModel):
                found[(answer, "serialization")] = None
    return list(found)


def _ref(refs: dict, model: type, mode: str) -> dict[str, Any]:
    return refs[(model, mode)]


def _operation(route: Route, refs: dict) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', route.path.lower()).strip('_') or 'root'}",
        "summary": route.summary,
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_ARG.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in route.query.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None or route.accepts:
        content: dict[str, Any] = {}
        if route.body is not None:
            content["application/json"] = {"schema": _ref(refs, route.body, "validation")}
        for media, text in route.accepts.items():
            content[media] = {"schema": {"type": "string", "contentMediaType": media, "description": text}}
        operation["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, answer in sorted(route.responses.items()):
        if isinstance(answer, type):
            response: dict[str, Any] = {
                "description": (answer.__doc__ or answer.__name__).strip().splitlines()[0],
                "content": {"application/json": {"schema": _ref(refs, answer, "serialization")}},
            }
        elif status >= 400:
            response = {
                "description": answer,
                "content": {"application/json": {"schema": _ref(refs, ErrorBody, "serialization")}},
            }
        else:
            response = {"description": answer}
        if status < 300 and route.produces:
            response.setdefault("content", {}).update(
                {media: {"schema": {"type": "string", "description": text}} for media, text in route.produces.items()}
            )
        responses[str(status)] = response
    for status, text in _COMMON.items():
        if route.auth or status in (500, 503):
            responses.setdefault(
                str(status),
                {
                    "description": text,
                    "content": {"application/json": {"schema": _ref(refs, ErrorBody, "serialization")}},
                },
            )
    operation["responses"] = responses
    if route.auth:
        operation["security"] = [{_AUTH[kind]: []} for kind in route.auth]
    return operation


def _built_in(path: str) -> dict[str, Any]:
    if path == "/healthz":
        return {
            "operationId": "get_healthz",
            "summary": "Liveness (no I/O); `?ready=1` readiness after the warm-up; `?deep=1` checks the stores.",
            "parameters": [
                {"name": "ready", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "deep", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "Up (and ready, and the stores answer, when asked); `warm_up` is `running` "
                    "while background loads still hold the interpreter at times, then `done`."
                },
                "503": {"description": "Still warming up (`ready`) or a store is down (`deep`)."},
            },
        }
    if path == "/metrics":
        return {
            "operationId": "get_metrics",
            "summary": "Prometheus exposition.",
            "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }
    return {
        "operationId": "get_openapi",
        "summary": "This document.",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {}}}}},
    }


def document(function: Function) -> dict[str, Any]:
    """The function's OpenAPI 3.1 document."""
    from pydantic.json_schema import models_json_schema

    models = _models(function)
    keys, schema = models_json_schema(models, ref_template="#/components/schemas/{model}")
    refs = {model: keys[model] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for route in function.routes.routes:
        paths.setdefault(_path(route.path), {})[route.method.lower()] = _operation(route, refs)
    for path in BUILT_IN:
        paths.setdefault(path, {})["get"] = _built_in(path)
    return {
        "openapi": "3.1.0",
        "info": {"title": function.title, "version": _version(), "description": function.description},
        "paths": paths,
        "components": {"schemas": schema.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("harvey")
    except PackageNotFoundError:
        return "0.0.0"
