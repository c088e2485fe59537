"""What every function's HTTP edge shares: routing, one error table, auth, body parsing, /healthz, /metrics.

A function declares its routes (werkzeug rules) and handlers that parse, make one library
call and respond. Library errors carry no HTTP status: `ERRORS` below maps them, once for
every function. Anything not in it is a 500 whose body says nothing about internals; the
traceback goes to the (redacted) log with the request id.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Request, Response
from prometheus_client import Counter
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from harvey import metrics, sockets
from harvey.edge import warmup

log = logging.getLogger("harvey.edge.http")
Handler = Callable[..., Response]
_BODY_READ = "harvey.body_read"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[\w.:@/+=-]{1,128}$")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        run_id: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.retry_after, self.run_id = retry_after, run_id


# Library exception → (status, Retry-After). Looked up by module and name among the modules already
# imported (an exception of a module nobody imported cannot have been raised), so the edge imports
# nothing heavy. `field` and `run_id` attributes of the exception are passed on, and its own
# `retry_after` where the table gives none. A subclass is listed before its base.
ERRORS: tuple[tuple[str, str, int, int | None], ...] = (
    ("harvey.schemas", "InvalidRequest", 400, None),
    ("harvey.store.db", "DatabaseUnavailable", 503, 10),
    ("harvey.store.feedback", "InvalidFeedback", 400, None),
    ("harvey.store.feedback", "RunNotFound", 404, None),
    ("harvey.store.feedback", "RunNotFinished", 409, 5),
    ("harvey.store.feedback", "IdempotencyConflict", 422, None),
    ("harvey.ops.tasks", "TaskError", 400, None),
    ("harvey.ops.tasks", "TaskBusy", 409, 30),
    ("harvey.drafting.runs", "QueueFull", 503, 5),
    ("harvey.drafting.runs", "RunBusy", 409, 30),
    ("harvey.search.ingest", "QueueFull", 503, 5),
    ("harvey.search.ingest", "WrongType", 415, None),
    ("harvey.search.ingest", "DocumentTooLarge", 413, None),
    ("harvey.intake.document", "UnsupportedType", 415, None),
    ("harvey.store.documents", "DocumentBusy", 409, None),
    ("harvey.export.word", "NotExportable", 409, None),
    ("harvey.export.docx", "InvalidTemplate", 400, None),
    ("harvey.review.links", "TokenInvalid", 401, None),
    ("harvey.review.links", "TokenExpired", 403, None),
    ("harvey.review.access", "ReviewDisabled", 503, 60),
    ("harvey.review.access", "RunMissing", 404, None),
    ("harvey.review.access", "RunNotReady", 409, 5),
    ("harvey.review.page", "NoDocument", 409, None),
    ("harvey.drafting.pipeline", "NoSources", 422, None),
    ("harvey.drafting.pipeline", "BudgetSpent", 402, None),
    ("harvey.drafting.pipeline", "ModelsUnavailable", 503, None),
    ("harvey.drafting.pipeline", "IndexUnavailable", 503, None),
    ("harvey.drafting.pipeline", "DatabaseDown", 503, None),
    ("harvey.drafting.pipeline", "GenerationError", 500, None),
)


def api_error(exc: BaseException) -> ApiError | None:
    """The ApiError an exception maps to, or None when it is unexpected (a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        return ApiError(exc.code or 500, exc.description or exc.name)
    for module, name, status, retry_after in ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return ApiError(
                status,
                getattr(exc, "message", None) or str(exc),
                field=getattr(exc, "field", None),
                retry_after=retry_after if retry_after is not None else getattr(exc, "retry_after", None),
                run_id=getattr(exc, "run_id", None),
            )
    return None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with Portuguese kept readable; a value that cannot be UTF-8 is sent \\u-escaped instead."""
    text = json.dumps(body, ensure_ascii=False, default=str)
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:
        payload = json.dumps(body, default=str).encode("ascii")
    return Response(payload, status=status, headers=headers, mimetype="application/json")


def error_response(err: ApiError) -> Response:
    body: dict[str, Any] = {"error": {"status": err.status, "message": err.message}}
    if err.field:
        body["error"]["field"] = err.field
    if err.run_id:
        body["run_id"] = err.run_id
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
    return json_response(body, err.status, headers)


def parse_json(raw: bytes, field: str = "body") -> Any:
    """Bytes → a JSON value whose strings are all storable; ApiError (400) naming what is wrong.

    The message gives a position, never an echo of the input (which may hold personal data).
    """
    from harvey.schemas import UnsafeInput, check_json

    try:
        value = json.loads(raw or b"null")
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"'{field}' is not valid JSON (line {exc.lineno}, column {exc.colno})", field=field
        ) from None
    except UnicodeDecodeError:
        raise ApiError(400, f"'{field}' is not valid UTF-8", field=field) from None
    except (RecursionError, ValueError):
        raise ApiError(400, f"'{field}' is not valid JSON or nests too deeply", field=field) from None
    try:
        check_json(value, field)
    except UnsafeInput as exc:
        raise ApiError(400, str(exc), field=exc.field) from None
    return value


def read_body(request: Request, max_bytes: int) -> bytes:
    """At most `max_bytes` + 1 bytes of the body (the caller refuses more), read with a deadline: a
    client that stalls mid-upload gets 408 instead of holding one of the instance's few threads for
    ever (gunicorn reads bodies without a timeout). An oversized body stays unread, so `serve`
    keeps functions-framework from reading the rest of it."""
    from harvey.config import get_settings

    sock = request.environ.get("gunicorn.socket")  # blocking: its receive timeout is the kernel's
    if sock is not None:
        sockets.receive_timeout(sock, get_settings().body_timeout_s)
    try:
        raw = request.stream.read(max_bytes + 1)
    except (OSError, HTTPException):  # the receive timeout, or werkzeug's ClientDisconnected
        raise ApiError(408, "the request body did not arrive in time") from None
    finally:
        if sock is not None:
            sockets.receive_timeout(sock, 0)
    if len(raw) <= max_bytes:
        request.environ[_BODY_READ] = True
    return raw


def _unread_body(request: Request) -> bool:
    return bool(request.content_length or request.headers.get("Transfer-Encoding")) and not request.environ.get(
        _BODY_READ
    )


def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError naming what is wrong with it."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, f"request body is {length} bytes; the limit is {max_bytes}")
    raw = read_body(request, max_bytes)
    if len(raw) > max_bytes:
        raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", field="body")
    return body


def header(request: Request, name: str, *, max_length: int = 200) -> str | None:
    """A header a handler will store or log: printable ASCII only, else 400 naming it."""
    value = request.headers.get(name)
    if value is not None and (not 1 <= len(value) <= max_length or not value.isascii() or not value.isprintable()):
        raise ApiError(400, f"'{name}' must be 1–{max_length} printable ASCII characters", field=name)
    return value


def bearer_tenant(request: Request):
    """The tenant behind `Authorization: Bearer <key>`; 401 otherwise, without saying which part failed.

    Then the tenant's rate limit takes one request: 429 with Retry-After when it is spent."""
    from harvey.store import limits, tenants

    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    tenant = tenants.authenticate(key.strip())
    if tenant is None:
        raise ApiError(401, "unknown or revoked API key")
    try:
        limits.admit(tenant)
    except limits.RateLimited as exc:
        raise ApiError(429, str(exc), retry_after=exc.retry_after_s) from None
    return tenant


def inbound_event(request: Request, accepted: tuple[str, ...], max_bytes: int | None = None):
    """The request's CloudEvent if it is one of `accepted`; otherwise a final 400 naming the problem.

    The sender is authenticated first (harvey.edge.eventauth): 401 before anything in the event is read,
    503 + Retry-After when the issuer's keys cannot be fetched. The body may be `max_bytes` long
    (default HARVEY_MAX_REQUEST_BYTES; a document inline needs more).
    """
    from harvey.config import get_settings
    from harvey.edge import eventauth, inbound

    try:
        eventauth.verify(request.headers)
    except eventauth.EventUnauthorized as exc:
        raise ApiError(401, str(exc)) from None
    except eventauth.VerifierUnavailable as exc:
        raise ApiError(503, str(exc), retry_after=exc.retry_after) from None
    event = inbound.parse(request, max_bytes or get_settings().max_request_bytes)  # InvalidEvent: a 400 (ERRORS)
    if event.type not in accepted:
        raise ApiError(
            400, f"event type {event.type!r} is not handled here (expected {', '.join(accepted)})", field="type"
        )
    return event


def event_tenant(data: dict[str, Any]):
    """Pop `tenant_id` from an in-cluster event's data and load the tenant; 400 when it names none.

    Deliveries count against the tenant's rate limit too: the 429 makes the broker back off and retry."""
    from harvey.store import limits, tenants

    try:
        tenant = tenants.recent_by_id(str(data.pop("tenant_id", None)))
    except tenants.UnknownTenant as exc:
        raise ApiError(400, "'tenant_id' must name an existing tenant", field="tenant_id") from exc
    try:
        limits.admit(tenant)
    except limits.RateLimited as exc:
        raise ApiError(429, str(exc), retry_after=exc.retry_after_s) from None
    return tenant


def store_checks(*stores: str) -> Callable[[], dict[str, str]]:
    """A `?deep=1` health check over the named stores ("postgres", "qdrant")."""

    def qdrant() -> None:
        from harvey.search.retrieval import open_index

        open_index().ping()

    def postgres() -> None:
        from harvey.store import db

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


@dataclass(frozen=True)
class Route:
    """One operation: what it answers is also what its OpenAPI document says (`edge.openapi`)."""

    method: str
    path: str
    handler: Handler
    summary: str
    auth: tuple[str, ...] = ("bearer",)  # any of "bearer", "event" (a verified sender), "review" (a signed link)
    body: type | None = None  # the pydantic model of a JSON body
    responses: Mapping[int, type | str] = field(default_factory=dict)  # status → model, or a description
    accepts: Mapping[str, str] = field(default_factory=dict)  # other request media types → description
    produces: Mapping[str, str] = field(default_factory=dict)  # other success media types → description
    query: Mapping[str, str] = field(default_factory=dict)  # query parameter → description


class Routes:
    """A function's routes as werkzeug rules, plus /healthz, /metrics and /openapi.json.

    The matched rule's template is also the metrics label, so junk paths add no series.
    """

    def __init__(self, *routes: Route):
        from werkzeug.routing import Map, Rule

        self.routes = routes
        self.handlers = {f"{r.method} {r.path}": r.handler for r in routes}
        self.map = Map(
            [Rule(r.path, endpoint=f"{r.method} {r.path}", methods=[r.method]) for r in routes]
            + [Rule(path, endpoint=f"GET {path}", methods=["GET"]) for path in BUILT_IN],
            strict_slashes=False,
            merge_slashes=False,  # `/runs//x` is a 404, not a redirect without a Location
        )

    def match(self, request: Request) -> tuple[str, str, dict[str, Any]]:
        """(metrics label = rule template, endpoint, path arguments); raises 404/405 as ApiError."""
        adapter = self.map.bind("localhost", path_info=request.path, url_scheme="http")
        try:
            endpoint, args = adapter.match(method=request.method)
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"}))
            raise ApiError(405, f"{request.method} is not allowed here; use {allowed}") from None
        except NotFound:
            raise ApiError(404, f"no route {request.method} {request.path}") from None
        return str(endpoint).split(" ", 1)[1], str(endpoint), dict(args)


BUILT_IN = ("/healthz", "/metrics", "/openapi.json")


@dataclass
class Function:
    """A function's whole edge: its name, routes, deep health checks and the warm-up after a cold start."""

    name: str
    title: str
    description: str
    routes: Routes
    checks: Callable[[], dict[str, str]] | None = None
    warm: tuple[Callable[[], None], ...] = ()

    def handle(self, request: Request) -> Response:
        if self.warm:
            warmup.start(*self.warm)
        return serve(self, request)


# How long a thread may keep the interpreter lock while another waits for it (CPython's default: 5 ms).
# A short answer (a 503 past the in-flight limit, a probe, an insert's reply) takes the lock a dozen times
# around its reads and writes, each time behind a CPU-bound draft: at 5 ms, sheds waited 120–355 ms at p99
# in bench/run.py's overload row; at 0.5 ms, 46–48 ms, and the drafts served meanwhile took as long.
SWITCH_INTERVAL_S = 0.0005


def boot() -> None:
    """What every main.py does at import: JSON logs, the event-auth warning, the framework's own
    errors (a path its router cannot match) in the same JSON shape as ours, and a short switch interval."""
    import functions_framework

    from harvey import logs
    from harvey.config import get_settings
    from harvey.edge.eventauth import warn_if_insecure

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    logs.setup(get_settings().log_level)
    warn_if_insecure()
    functions_framework.errorhandler(HTTPException)(framework_error)


def health(function: str, checks: Callable[[], dict[str, str]] | None, request: Request) -> Response:
    """Shallow by default (no I/O: the liveness probe); `?ready=1` (the readiness probe) is a 503 while the
    warm-up still runs; `?deep=1` also checks the stores."""
    body: dict[str, Any] = {"status": "ok", "function": function, "warm_up": "done" if warmup.finished() else "running"}
    if request.args.get("ready") and not warmup.ready():
        return json_response({**body, "status": "warming"}, 503, {"Retry-After": "1"})
    if request.args.get("deep") and checks is not None:
        body["checks"] = checks()
        if any(v != "ok" for v in body["checks"].values()):
            body["status"] = "degraded"
            return json_response(body, 503)
    return json_response(body)


SHED = Counter("harvey_http_shed_total", "Requests answered 503 at once: in-flight limit reached", ["function"])
_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def _in_flight_slots() -> threading.BoundedSemaphore:
    """This process's slots: HARVEY_MAX_IN_FLIGHT, else THREADS (re-made when the setting changes)."""
    from harvey.config import get_settings, request_threads

    global _slots
    limit = get_settings().max_in_flight or request_threads()
    with _slots_lock:
        if _slots is None or _slots[0] != limit:
            _slots = (limit, threading.BoundedSemaphore(limit))
        return _slots[1]


def serve(function: Function, request: Request) -> Response:
    """Route one request; time and count it; turn every exception into a JSON error.

    Past the in-flight limit a handler is not started: 503 + Retry-After at once, rather than a queue
    whose wait the client cannot see (probes, /metrics and /openapi.json are never refused)."""
    started = time.perf_counter()
    route = "unmatched"
    request_id = request.headers.get("X-Request-Id", "")
    if not _REQUEST_ID.match(request_id):
        request_id = str(uuid.uuid4())
    try:
        route, endpoint, args = function.routes.match(request)
        if endpoint == "GET /healthz":
            response = health(function.name, function.checks, request)
        elif endpoint == "GET /metrics":
            from harvey import events

            events.settle_answered()  # outcomes of events sent without waiting, whose replies have arrived
            payload, content_type = metrics.exposition()
            response = Response(payload, mimetype=content_type.split(";")[0], content_type=content_type)
        elif endpoint == "GET /openapi.json":
            from harvey.edge import openapi

            response = json_response(openapi.document(function))
        else:
            slots = _in_flight_slots()
            if slots.acquire(blocking=False):
                try:
                    response = function.routes.handlers[endpoint](request, **args)
                finally:
                    slots.release()
            else:  # counted, not logged: an overload would flood the log
                SHED.labels(function.name).inc()
                response = error_response(ApiError(503, "this instance is at its in-flight limit", retry_after=1))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer
        err = api_error(exc)
        if err is None:
            log.exception("unhandled error", extra={"function": function.name, "request_id": request_id})
            err = ApiError(500, f"internal error; quote request_id {request_id} to the operator")
        elif err.status >= 500:
            log.warning(
                "request failed",
                extra={"function": function.name, "request_id": request_id, "status": err.status, "error": err.message},
            )
        response = error_response(err)
    response.headers.setdefault("X-Request-Id", request_id)
    if _unread_body(request):
        # functions-framework reads any body the handler left unread after the response is made,
        # with neither deadline nor size limit: a stalled or endless upload would hold this thread.
        # A streamed response skips that read; gunicorn then drains briefly (bounded) and closes.
        response.response = iter([response.get_data()])
    method = request.method if request.method in _METHODS else "OTHER"  # any token is a valid method
    metrics.HTTP_REQUESTS.labels(function.name, method, route, str(response.status_code)).inc()
    metrics.HTTP_DURATION.labels(function.name, method, route).observe(time.perf_counter() - started)
    return response


def framework_error(exc: HTTPException) -> Response:
    """For `functions_framework.errorhandler(HTTPException)`: what the framework's own router answers
    before `serve` runs (a path its `/<path:path>` rule cannot match, such as one with a newline)
    gets the same JSON error shape as everything else."""
    return error_response(ApiError(exc.code or 500, exc.description or exc.name))
