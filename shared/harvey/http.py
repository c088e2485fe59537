"""What every function's HTTP edge shares: JSON errors, auth, body limits, /healthz, /metrics.

Functions stay thin: parse with these helpers, call the library, respond.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Request, Response
from werkzeug.exceptions import HTTPException

from harvey import metrics

log = logging.getLogger("harvey.http")


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None, retry_after: int | None = None,
                 run_id: str | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.retry_after, self.run_id = retry_after, run_id


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, default=str), status=status, headers=headers,
        mimetype="application/json",
    )  # fmt: skip


def error_response(err: ApiError) -> Response:
    body: dict[str, Any] = {"error": {"status": err.status, "message": err.message}}
    if err.field:
        body["error"]["field"] = err.field
    if err.run_id:
        body["run_id"] = err.run_id
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
    return json_response(body, err.status, headers)


def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError naming what is wrong with it."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, f"request body is {length} bytes; the limit is {max_bytes}")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", field="body") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", field="body")
    return body


def bearer_tenant(request: Request):
    """The tenant behind `Authorization: Bearer <key>`; 401 otherwise, without saying which part failed."""
    from harvey import tenants

    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    tenant = tenants.authenticate(key.strip())
    if tenant is None:
        raise ApiError(401, "unknown or revoked API key")
    return tenant


def inbound_event(request: Request, accepted: tuple[str, ...]):
    """The request's CloudEvent if it is one of `accepted`; otherwise a final 400 naming the problem."""
    from harvey import cloudevents_in
    from harvey.config import get_settings

    try:
        event = cloudevents_in.parse(request, get_settings().max_request_bytes)
    except cloudevents_in.InvalidEvent as exc:
        raise ApiError(400, str(exc), field=exc.field) from exc
    if event.type not in accepted:
        raise ApiError(400, f"event type {event.type!r} is not handled here (expected {', '.join(accepted)})",
                       field="type")  # fmt: skip
    return event


def event_tenant(data: dict[str, Any]):
    """Pop `tenant_id` from an in-cluster event's data and load the tenant; 400 when it names none."""
    from harvey import tenants

    try:
        return tenants.by_id(str(data.pop("tenant_id", None)))
    except tenants.UnknownTenant as exc:
        raise ApiError(400, "'tenant_id' must name an existing tenant", field="tenant_id") from exc


def store_checks(*stores: str) -> Callable[[], dict[str, str]]:
    """A `?deep=1` health check over the named stores ("postgres", "qdrant")."""

    def qdrant() -> None:
        from harvey.retrieval import open_index

        open_index().ping()

    def postgres() -> None:
        from harvey import db

        db.ping()

    known = {"postgres": postgres, "qdrant": qdrant}

    def run() -> dict[str, str]:
        results = {}
        for name in stores:
            try:
                known[name]()
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                results[name] = f"error: {exc}"
        return results

    return run


def _route_label(request: Request) -> str:
    path = request.path.rstrip("/") or "/"
    if path in ("/", "/healthz", "/metrics"):
        return path
    parts = path.split("/")
    return "/".join(p if i < 2 or not p else "{id}" for i, p in enumerate(parts[:3])) + ("/…" if len(parts) > 3 else "")


def health(function: str, checks: Callable[[], dict[str, str]] | None, request: Request) -> Response:
    """Shallow by default (no I/O: used by probes); `?deep=1` also checks the stores."""
    body: dict[str, Any] = {"status": "ok", "function": function}
    if request.args.get("deep") and checks is not None:
        body["checks"] = checks()
        if any(v != "ok" for v in body["checks"].values()):
            body["status"] = "degraded"
            return json_response(body, 503)
    return json_response(body)


def endpoint(function: str, checks: Callable[[], dict[str, str]] | None = None):
    """Wrap a function's handler: /healthz, /metrics, timing, status counts and JSON errors."""

    def decorate(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        @wraps(handler)
        def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            route = _route_label(request)
            request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())
            try:
                if request.method == "GET" and route == "/healthz":
                    response = health(function, checks, request)
                elif request.method == "GET" and route == "/metrics":
                    payload, content_type = metrics.exposition()
                    response = Response(payload, mimetype=content_type.split(";")[0], content_type=content_type)
                else:
                    response = handler(request)
            except ApiError as err:
                response = error_response(err)
            except HTTPException as exc:
                response = error_response(ApiError(exc.code or 500, exc.description or exc.name))
            except Exception as exc:  # noqa: BLE001 - never a traceback to the client
                log.exception("unhandled error", extra={"function": function, "request_id": request_id})
                response = error_response(
                    ApiError(500, f"internal error ({type(exc).__name__}); request_id {request_id}")
                )
            response.headers.setdefault("X-Request-Id", request_id)
            metrics.HTTP_REQUESTS.labels(function, request.method, route, str(response.status_code)).inc()
            metrics.HTTP_DURATION.labels(function, request.method, route).observe(time.perf_counter() - started)
            return response

        return wrapper

    return decorate
