"""The generate function: drafts over HTTP (sync, async, streamed) and from CloudEvents."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

from flask import Request, Response

from harvey.config import get_settings
from harvey.edge import http
from harvey.schemas import DraftResult, GenerateRequest, RunAccepted, RunView

EVENT_REQUESTED = "com.harvey.generate.requested"


def _post(request: Request) -> Response:
    from harvey.drafting import runs
    from harvey.edge import inbound

    if inbound.is_cloudevent(request):
        event = http.inbound_event(request, (EVENT_REQUESTED,))
        body = dict(event.data)
        outcome = runs.from_event(http.event_tenant(body), body, event.source, event.id)
        response = inbound.ack(
            200, run_id=outcome.run_id, run_status=outcome.status, duplicate=str(outcome.duplicate).lower()
        )
        response.headers["Location"] = f"/runs/{outcome.run_id}"
        return response
    tenant = http.bearer_tenant(request)
    body = http.read_json(request, get_settings().max_request_bytes)
    request_id = http.header(request, "X-Request-Id", max_length=128)
    if "text/event-stream" in request.headers.get("Accept", "").lower():
        return _stream(tenant, body, request_id)
    if "respond-async" in request.headers.get("Prefer", "").lower():
        run_id = runs.start_async(tenant, body, request_id)
        headers = {"Location": f"/runs/{run_id}", "Preference-Applied": "respond-async"}
        accepted = RunAccepted(run_id=run_id, status="queued", location=f"/runs/{run_id}")
        return http.json_response(accepted.model_dump(), 202, headers)
    return http.json_response(_answer(runs.start_sync(tenant, body, request_id), tenant.id))


def _answer(result: DraftResult, tenant_id: str) -> dict[str, Any]:
    """The result as sent: with a fresh review link (minted per answer, so a stored result never holds one)."""
    from harvey.review import access

    return result.model_copy(update={"review_url": access.link(tenant_id, result.run_id)}).model_dump(mode="json")


def _stream(tenant, body: dict[str, Any], request_id: str | None) -> Response:  # noqa: ANN001 - a Tenant
    """Server-Sent Events as the run advances: `retrieved`, `section`…, then `done` (the normal JSON) or
    `error` (the normal error body). The run and its audit row are those of a plain POST."""
    from harvey.drafting import runs

    progress: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)  # a draft has a dozen events at most

    def tell(stage: str, data: dict[str, Any]) -> None:
        _put(progress, ("progress", (stage, data)))

    run_id, future = runs.start_streamed(tenant, body, request_id, tell)
    future.add_done_callback(lambda _: _put(progress, ("end", None)))
    heartbeat = get_settings().stream_heartbeat_s

    def events() -> Iterator[str]:
        yield f": run {run_id}\n\n"
        while True:
            try:
                kind, item = progress.get(timeout=heartbeat)
            except queue.Empty:
                yield ": heartbeat\n\n"
                continue
            if kind == "progress":
                yield _event(*item)
                continue
            try:
                yield _event("done", _answer(future.result(), tenant.id))
            except Exception as exc:  # noqa: BLE001 - sent as the error event HTTP would have answered
                yield _event("error", _error_body(exc, request_id))
            return

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Location": f"/runs/{run_id}"}
    return Response(events(), mimetype="text/event-stream", headers=headers)


def _put(progress: queue.Queue[tuple[str, Any]], item: tuple[str, Any]) -> None:
    try:
        progress.put(item, timeout=1)
    except queue.Full:  # nobody is reading (the client left): the run goes on, its events are dropped
        pass


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def _error_body(exc: Exception, request_id: str | None) -> dict[str, Any]:
    err = http.api_error(exc)
    if err is None:
        http.log.exception("unhandled error in a streamed run", extra={"request_id": request_id})
        err = http.ApiError(500, f"internal error; quote request_id {request_id or '-'} to the operator")
    return json.loads(http.error_response(err).get_data())


def _document_docx(request: Request, run_id: str) -> Response:
    from harvey.export import word

    docx = word.for_run(http.bearer_tenant(request).id, run_id)
    if docx is None:
        raise http.ApiError(404, f"no run {run_id}")
    return Response(
        docx,
        mimetype=DOCX,
        headers={"Content-Disposition": f'attachment; filename="harvey-{run_id}.docx"'},
    )


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _run_status(request: Request, run_id: str) -> Response:
    from harvey.drafting import runs

    row = runs.get(http.bearer_tenant(request).id, run_id)
    if row is None:
        raise http.ApiError(404, f"no run {run_id}")
    view = _view(row).model_dump(mode="json")
    return http.json_response({k: v for k, v in view.items() if k not in ("result", "error") or v is not None})


def _view(row: dict[str, Any]) -> RunView:
    """A runs row as clients see it; a failure carries the status its request got (or would have)."""
    from harvey.drafting.pipeline import FAILURES

    error = row["error"] if row["status"] == "failed" else None
    if error is not None and "code" in error:
        failure = FAILURES.get(error["code"], FAILURES["internal"])(error["message"], str(row["run_id"]))
        mapped = http.api_error(failure)
        error = {**error, "status": mapped.status if mapped else 500}
    return RunView.model_validate(
        {
            "run_id": str(row["run_id"]),
            "status": row["status"],
            "doc_type": row["doc_type"],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
            "result": _result_of(row) if row["status"] in ("succeeded", "withheld") and row["result"] else None,
            "error": error,
        }
    )


def _result_of(row: dict[str, Any]) -> dict[str, Any]:
    from harvey.review import access

    return {**row["result"], "review_url": access.link(str(row["tenant_id"]), str(row["run_id"]))}


def _warm_llm() -> None:
    from harvey.drafting import llm

    llm.load()


def _warm_index() -> None:
    from harvey.search.retrieval import open_index

    open_index()


def _close_stale_runs() -> None:
    from harvey.drafting import runs

    runs.fail_stale()


_DRAFT_ERRORS = {
    400: "A field is missing or invalid (`error.field` names it), or the CloudEvent is malformed.",
    402: "The tenant's monthly budget is spent (audited as a failed run).",
    408: "The body did not arrive in time (HARVEY_BODY_TIMEOUT_S).",
    409: "The event's run is being generated by another delivery (the broker retries).",
    413: "The body is over HARVEY_MAX_REQUEST_BYTES.",
    422: "No indexed source of the tenant matches the task.",
}
API = http.Function(
    name="generate",
    title="Harvey generate",
    description="Drafts Brazilian legal documents grounded in the tenant's own corpus, with citations, "
    "a faithfulness report, a PII report and an audit row per run.",
    routes=http.Routes(
        http.Route(
            "POST",
            "/",
            _post,
            "Draft a document (sync; `Prefer: respond-async` for 202; `Accept: text/event-stream` for "
            "Server-Sent Events retrieved/section/done/error), or take a generate.requested CloudEvent.",
            auth=("bearer", "event"),
            body=GenerateRequest,
            produces={"text/event-stream": "`Accept: text/event-stream`: events retrieved, section, done, error"},
            responses={200: DraftResult, 202: RunAccepted, **_DRAFT_ERRORS},
        ),
        http.Route(
            "GET",
            "/runs/<run_id>",
            _run_status,
            "A run's status, and its result once done.",
            responses={200: RunView, 404: "No run with this id for this tenant."},
        ),
        http.Route(
            "GET",
            "/runs/<run_id>/document.docx",
            _document_docx,
            "The run's draft as a Word document (the tenant's letterhead when it has one); same run, same bytes.",
            produces={DOCX: "the .docx"},
            responses={
                200: "The document.",
                404: "No run with this id for this tenant.",
                409: "The run has no document to export (running, failed or withheld).",
            },
        ),
    ),
    checks=http.store_checks("postgres", "qdrant"),
    warm=(_warm_llm, _warm_index, _close_stale_runs),
)
