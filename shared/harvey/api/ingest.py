"""The ingest function: documents in (PDF, DOCX, HTML, text, Markdown) over HTTP and from CloudEvents.

An upload is answered 202 as soon as it is recorded; parsing, OCR and embedding run on this pod's
bounded pool (`search.ingest`) and clients poll `GET /documents/{id}`. The body is read at most to
HARVEY_MAX_UPLOAD_BYTES, with the edge's deadline; a declared size or type that cannot be taken is
refused before a byte of it is read.
"""

from __future__ import annotations

import base64
import binascii
import io
from datetime import datetime
from typing import Literal
from urllib.parse import quote, unquote

from flask import Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harvey import metrics
from harvey.config import get_settings
from harvey.edge import http

EVENT_SUBMITTED = "com.harvey.document.submitted"
MULTIPART = "multipart/form-data"
MULTIPART_SLACK = 64 * 1024  # the form's boundaries, part headers and small fields around the file
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
EVENT_LEASE_S = 120
# Held answers stay under the Service's timeoutSeconds (600), OCR of a long scan included.
MAX_WAIT_S = 540
EVENT_WAIT_S = 540.0
TYPES = {
    "application/pdf": "A PDF (text layer, or scanned: read by OCR).",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "A Word document (.docx).",
    "text/html": "An HTML page (navigation, scripts and footers are dropped).",
    "text/plain": "Plain text (charset parameter honoured, else UTF-8 or Windows-1252).",
    "text/markdown": "Markdown (headings become the heading path).",
    MULTIPART: "A form with `file` (its part's Content-Type, or its file name's extension) and optional "
    "`id` and `title` fields.",
}


class DocumentAccepted(BaseModel):
    """The upload is recorded: queued (202); or done: the same bytes were already indexed ("unchanged"),
    or it was indexed or failed while the client waited (`Prefer: wait=N`)."""

    document_id: str
    status: Literal["queued", "processing", "unchanged", "indexed", "failed"]
    sha256: str
    location: str


class DocumentView(BaseModel):
    """A document and where its upload stands."""

    document_id: str
    status: Literal["queued", "processing", "indexed", "failed", "deleted"]
    title: str
    content_type: str | None
    sha256: str | None
    bytes: int | None
    pages: int | None = Field(description="PDF pages (0 for formats without pages); null until parsed")
    ocr_pages: int | None = Field(description="pages read by OCR")
    chunks: int = Field(description="chunks in the index")
    parser: str | None
    error: str | None = Field(description="why the document failed, in words its sender can act on")
    created_at: datetime
    updated_at: datetime


class DocumentPage(BaseModel):
    """A page of the tenant's documents in id order; pass `next_cursor` as `cursor` for the next one."""

    documents: list[DocumentView]
    next_cursor: str | None


class DocumentDeleted(BaseModel):
    """The document's chunks are out of the index and its text is gone; the audit row says so."""

    document_id: str
    status: Literal["deleted"]
    chunks_removed: int
    audit_run_id: str | None


class DocumentEvent(BaseModel):
    """A document.submitted event's data: the file inline (base64), or a stored upload to resume
    (what requeue_stale_documents sends)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    tenant_id: str
    document_id: str | None = Field(None, max_length=200)
    title: str | None = Field(None, max_length=1000)
    content_type: str | None = Field(None, max_length=200)
    content_base64: str | None = None
    upload_id: str | None = Field(None, description="resume this stored upload instead (no content)")


def _location(document_id: str) -> str:
    return f"/documents/{quote(document_id, safe='')}"


def _view(doc) -> DocumentView:  # noqa: ANN001 - a store.documents.Document
    return DocumentView(
        document_id=doc.document_id,
        status=doc.status,
        title=doc.title or doc.document_id,
        content_type=doc.content_type,
        sha256=doc.sha256,
        bytes=doc.bytes,
        pages=doc.pages,
        ocr_pages=doc.ocr_pages,
        chunks=doc.chunks,
        parser=doc.parser,
        error=doc.error,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


def _accepted(tenant_id: str, accepted, wait_s: float) -> Response:  # noqa: ANN001 - a search.ingest.Accepted
    """202 while the upload waits or runs; 200 once it is done (`unchanged`, or within the client's wait)."""
    status, headers = accepted.status, {"Location": _location(accepted.document_id)}
    if wait_s > 0:
        headers["Preference-Applied"] = f"wait={wait_s:g}"
        status = _finished(tenant_id, accepted, wait_s) or status
    body = DocumentAccepted(
        document_id=accepted.document_id, status=status, sha256=accepted.sha256, location=headers["Location"]
    )
    done = status in ("unchanged", "indexed", "failed")
    return http.json_response(body.model_dump(), 200 if done else 202, headers)


def _finished(tenant_id: str, accepted, wait_s: float) -> str | None:  # noqa: ANN001 - a search.ingest.Accepted
    """The final status if the upload's job ends within `wait_s`, else None (it goes on in the background)."""
    from concurrent.futures import TimeoutError as Pending

    from harvey.store import documents

    if accepted.job is None:
        return None
    try:
        accepted.job.result(timeout=wait_s)
    except Pending:
        return None
    doc = documents.get(tenant_id, accepted.document_id)
    return doc.status if doc is not None and doc.status in ("indexed", "failed") else None


def _wait(request: Request) -> float:
    """`Prefer: wait=N` (RFC 7240): hold the answer up to N seconds (at most MAX_WAIT_S) for the upload to
    be indexed. Bulk loaders should: a held request is what Knative's autoscaler counts to add pods."""
    for preference in request.headers.get("Prefer", "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return float(min(int(value.strip()), MAX_WAIT_S))
    return 0.0


def _too_large(size: int | None, limit: int) -> http.ApiError:
    metrics.INGEST_REJECTED.labels(reason="too_large").inc()
    said = f"is {size} bytes" if size is not None else "exceeds the limit"
    return http.ApiError(413, f"the upload {said}; the limit is {limit} bytes (HARVEY_MAX_UPLOAD_BYTES)")


def _upload(request: Request) -> Response:
    from harvey.intake import UnsupportedType
    from harvey.intake.dispatch import SUPPORTED_TYPES, media_type
    from harvey.search import ingest

    tenant = http.bearer_tenant(request)
    limit = get_settings().max_upload_bytes
    declared, _ = media_type(request.headers.get("Content-Type", ""))
    multipart = declared == MULTIPART
    if not multipart and declared not in SUPPORTED_TYPES:
        metrics.INGEST_REJECTED.labels(reason="unsupported").inc()
        raise UnsupportedType(declared)
    body_limit = limit + MULTIPART_SLACK if multipart else limit
    if request.content_length is not None and request.content_length > body_limit:
        raise _too_large(request.content_length, limit)
    raw = http.read_body(request, body_limit)
    if len(raw) > body_limit:
        raise _too_large(None, limit)
    document_id = _header_text(request, "X-Document-Id")
    title = _header_text(request, "X-Document-Title")
    if multipart:
        data, content_type, fields = _form(raw, request.headers["Content-Type"], limit)
        document_id = fields.get("id") or document_id
        title = fields.get("title") or title
    else:
        data, content_type = raw, request.headers["Content-Type"]
    upload = ingest.Upload(data=data, content_type=content_type, document_id=document_id, title=title)
    return _accepted(tenant.id, ingest.accept(tenant.id, upload), _wait(request))


def _header_text(request: Request, name: str) -> str | None:
    """A header that may carry any text percent-encoded as UTF-8 (HTTP headers are ASCII)."""
    value = http.header(request, name, max_length=1000)
    if value is None:
        return None
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise http.ApiError(400, f"'{name}' is not percent-encoded UTF-8", field=name) from None


def _form(raw: bytes, content_type: str, limit: int) -> tuple[bytes, str, dict[str, str]]:
    """(file bytes, its declared type, the small fields) of a multipart/form-data body."""
    from werkzeug.exceptions import RequestEntityTooLarge
    from werkzeug.formparser import FormDataParser
    from werkzeug.http import parse_options_header

    from harvey.intake import UnsupportedType
    from harvey.intake.dispatch import media_type
    from harvey.search.ingest import CONTENT_TYPES

    mimetype, options = parse_options_header(content_type)
    parser = FormDataParser(
        stream_factory=lambda *_args, **_kwargs: io.BytesIO(),
        max_form_memory_size=MULTIPART_SLACK,
        max_content_length=limit + MULTIPART_SLACK,
        silent=False,
        max_form_parts=8,
    )
    try:
        _, form, files = parser.parse(io.BytesIO(raw), mimetype, len(raw), options)
    except RequestEntityTooLarge:
        raise _too_large(None, limit) from None
    except ValueError:
        raise http.ApiError(400, "the multipart/form-data body is malformed", field="body") from None
    upload = files.get("file")
    if upload is None:
        raise http.ApiError(400, "the form has no 'file' part", field="file")
    data = upload.stream.read()
    declared = media_type(upload.mimetype or "")[0]
    if declared in ("", "application/octet-stream"):
        suffix = "." + (upload.filename or "").rsplit(".", 1)[-1].lower() if "." in (upload.filename or "") else ""
        if suffix not in CONTENT_TYPES:
            raise UnsupportedType(declared or "a file part without a content type or a known extension")
        part_type = CONTENT_TYPES[suffix]
    else:
        part_type = upload.content_type or declared
    fields = {name: str(form[name]) for name in ("id", "title") if form.get(name)}
    return data, part_type, fields


def _document(request: Request, document_id: str) -> Response:
    from harvey.store import documents

    doc = documents.get(http.bearer_tenant(request).id, document_id)
    if doc is None:
        raise http.ApiError(404, f"no document {document_id!r}")
    return http.json_response(_view(doc).model_dump(mode="json"))


def _list(request: Request) -> Response:
    from harvey.store import documents

    tenant = http.bearer_tenant(request)
    status = request.args.get("status") or None
    if status is not None and status not in documents.STATUSES:
        raise http.ApiError(400, f"'status' must be one of {', '.join(documents.STATUSES)}", field="status")
    after = _cursor(request.args.get("cursor"))
    raw_limit = request.args.get("limit") or str(PAGE_SIZE)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
        raise http.ApiError(400, f"'limit' must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    limit = int(raw_limit)
    rows = documents.listing(tenant.id, status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    page = rows[:limit]
    cursor = base64.urlsafe_b64encode(page[-1].document_id.encode()).decode() if more else None
    body = DocumentPage(documents=[_view(d) for d in page], next_cursor=cursor)
    return http.json_response(body.model_dump(mode="json"))


def _cursor(value: str | None) -> str | None:
    if not value:
        return None
    try:
        after = base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error):
        after = ""
    if not after:
        raise http.ApiError(400, "'cursor' is not a cursor this API returned", field="cursor")
    return after


def _delete(request: Request, document_id: str) -> Response:
    from harvey.ops import tasks
    from harvey.store import documents

    tenant = http.bearer_tenant(request)
    doc = documents.get(tenant.id, document_id)
    if doc is None:
        raise http.ApiError(404, f"no document {document_id!r}")
    result = tasks.purge_document(tasks.Params(tenant=tenant, document_id=document_id))
    body = DocumentDeleted(
        document_id=document_id,
        status="deleted",
        chunks_removed=0 if result.get("already_purged") else doc.chunks,
        audit_run_id=result.get("audit_run_id"),
    )
    return http.json_response(body.model_dump())


def _event_limit() -> int:
    """A document inline as base64 (4/3 of its bytes) plus the event's other fields."""
    return (get_settings().max_upload_bytes + 2) // 3 * 4 + MULTIPART_SLACK


def _post(request: Request) -> Response:
    from harvey.edge import inbound
    from harvey.schemas import InvalidRequest, describe
    from harvey.search import ingest
    from harvey.store import ledger

    if not inbound.is_cloudevent(request):
        raise http.ApiError(400, "expected a CloudEvent; upload documents with POST /documents", field="body")
    event = http.inbound_event(request, (EVENT_SUBMITTED,), max_bytes=_event_limit())
    body = dict(event.data)
    tenant = http.event_tenant(body)
    try:
        data = DocumentEvent.model_validate({**body, "tenant_id": tenant.id})
    except ValidationError as exc:
        field, message = describe(exc)
        raise InvalidRequest(field, message) from None
    outcome: dict[str, str] = {"document_id": data.document_id or "", "status": "skipped"}
    taken: list = []  # the Accepted of this delivery, if it queued a job

    def work() -> dict[str, str]:
        if data.upload_id is not None:
            if data.document_id is None:
                raise InvalidRequest("document_id", "'document_id' is required with 'upload_id'")
            resumed = ingest.resume(tenant.id, data.document_id, data.upload_id)
            outcome["status"] = resumed.status if resumed else "skipped"
            taken.extend([resumed] if resumed else [])
            return dict(outcome)
        if data.content_base64 is None or data.content_type is None:
            raise InvalidRequest("content_base64", "'content_base64' and 'content_type' are required")
        try:
            content = base64.b64decode(data.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("content_base64", "'content_base64' is not valid base64") from None
        upload = ingest.Upload(content, data.content_type, data.document_id, data.title, origin="event")
        accepted = ingest.accept(tenant.id, upload)
        outcome.update(document_id=accepted.document_id, status=accepted.status)
        taken.append(accepted)
        return dict(outcome)

    try:
        duplicate = ledger.once(event.key, EVENT_LEASE_S, work)
    except ledger.Busy as exc:
        raise http.ApiError(409, str(exc), retry_after=5) from None
    if taken:  # held while it runs, so the broker's deliveries in flight are the load the autoscaler sees
        outcome["status"] = _finished(tenant.id, taken[0], EVENT_WAIT_S) or outcome["status"]
    status = 202 if outcome["status"] == "queued" and not duplicate else 200
    document = quote(outcome["document_id"], safe="")  # a header is ASCII
    return inbound.ack(
        status, duplicate=str(duplicate).lower(), document_id=document, document_status=outcome["status"]
    )


def _warm_index() -> None:
    from harvey.search.retrieval import open_index

    open_index()


def _warm_parsers() -> None:
    """The parsers' libraries, and Tesseract's Portuguese model found once (a missing one is logged now,
    not discovered by the first scanned page)."""
    import docx  # noqa: F401 - imported for the warm-up
    import pypdfium2  # noqa: F401
    import selectolax.lexbor  # noqa: F401

    from harvey.intake import ocr

    try:
        ocr.tesseract()
    except ocr.OcrUnavailable as exc:
        http.log.error("OCR unavailable: scanned pages will fail", extra={"error": str(exc)})


def _oldest_queued() -> float | None:
    from harvey.search import ingest

    return ingest.oldest_queued_seconds()


_PATH = "/documents/<document_id>"
_NOT_FOUND = "No document with this id for this tenant."
API = http.Function(
    name="ingest",
    title="Harvey ingest",
    description="Documents in: PDF (text or scanned), DOCX, HTML, text and Markdown, parsed, chunked with their "
    "page and heading path, and indexed for the tenant's drafts; each upload's status until it is indexed.",
    routes=http.Routes(
        http.Route(
            "POST",
            "/documents",
            _upload,
            "Upload a document: the file as the body with its Content-Type, or multipart/form-data with `file`. "
            "`X-Document-Id` (else derived from the bytes) and `X-Document-Title` (percent-encoded UTF-8) name it; "
            f"`Prefer: wait=N` holds the answer up to N s (at most {MAX_WAIT_S}) until it is indexed or failed.",
            accepts=TYPES,
            responses={
                202: DocumentAccepted,
                200: "Done: the same bytes were already indexed (`unchanged`), or it was indexed or failed within "
                "`Prefer: wait`.",
                400: "A bad document id, title or form (`error.field` names it), or an empty file.",
                408: "The body did not arrive in time (HARVEY_BODY_TIMEOUT_S).",
                413: "The upload is over HARVEY_MAX_UPLOAD_BYTES (refused before its body is read).",
                415: "A type Harvey does not read, or bytes that are not the declared type.",
            },
        ),
        http.Route(
            "GET",
            "/documents",
            _list,
            "The tenant's documents in id order, a page at a time.",
            query={
                "status": "queued, processing, indexed, failed or deleted",
                "cursor": "`next_cursor` of the previous page",
                "limit": f"page size, 1–{MAX_PAGE_SIZE} (default {PAGE_SIZE})",
            },
            responses={200: DocumentPage, 400: "A bad `status`, `cursor` or `limit`."},
        ),
        http.Route(
            "GET",
            _PATH,
            _document,
            "A document's status: queued, processing, indexed (with pages, OCR pages and chunks) or failed "
            "(with the reason).",
            responses={200: DocumentView, 404: _NOT_FOUND},
        ),
        http.Route(
            "DELETE",
            _PATH,
            _delete,
            "Delete a document: its chunks leave the index, its text is dropped, an audit row records it.",
            responses={
                200: DocumentDeleted,
                404: _NOT_FOUND,
                409: "The document is being indexed by another request right now (Retry-After).",
            },
        ),
        http.Route(
            "POST",
            "/",
            _post,
            "Take a document.submitted CloudEvent (content inline as base64, or a stored upload to resume), "
            "once per event however often it is delivered; X-Harvey-Document-Id, X-Harvey-Document-Status and "
            "X-Harvey-Duplicate say what happened.",
            auth=("event",),
            body=DocumentEvent,
            responses={
                202: "Taken, still running after the wait (empty body: a broker reads a reply as an event).",
                200: "Indexed or failed (the delivery is held while it runs), a redelivery of an event already "
                "taken, or the same bytes already indexed.",
                400: "Not a CloudEvent, bad data or an unknown tenant (final).",
                409: "Another delivery of the same event is being taken (the broker retries).",
                415: "A type Harvey does not read, or bytes that are not the declared type (final).",
            },
        ),
    ),
    checks=http.store_checks("postgres", "qdrant"),
    warm=(_warm_index, _warm_parsers),
)
metrics.export_queued_uploads(_oldest_queued)
