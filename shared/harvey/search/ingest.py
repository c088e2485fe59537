"""Bring a tenant's documents into the index: `.jsonl` records at once, uploaded files through a queue.

Records (`ingest`, from `harvey ingest` and the demo): a document whose content hash is unchanged is
skipped; a changed one has its old chunks replaced. The row is written after the chunks, so a crash in
between leaves an old hash behind and the next ingest simply redoes that document.

Uploads (PDF, DOCX, HTML, text, Markdown: the ingest function, and files given to `harvey ingest`):
`prepare` refuses what is knowable at once (a type intake does not read, bytes that are not what was
declared, a body over HARVEY_MAX_UPLOAD_BYTES) and answers "unchanged" for the same bytes; `accept`
then records the upload `queued` with its bytes and hands it to this process's bounded pool
(HARVEY_INGEST_WORKERS threads, at most HARVEY_INGEST_QUEUE_DEPTH waiting; full: QueueFull before any
row is written). `process` parses it (harvey.intake), chunks it (`chunk_parsed`: page and heading
path on every chunk) and swaps the document's chunks under its lock (`documents.locked`): the old ones
out, then the new ones in, so two versions are never both searchable. A file that cannot be read
ends `failed` with the parser's reason and nothing of it in the index. A pod that dies mid-upload
leaves the row to its lease: `requeue_stale` (the maintenance task requeue_stale_documents) sends it
back to the ingest function as a document.submitted event, and fails it after MAX_REQUEUES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harvey import metrics, pool
from harvey.config import get_settings
from harvey.schemas import InvalidRequest, check_text
from harvey.search import cache
from harvey.store import documents

log = logging.getLogger("harvey.search.ingest")

BATCH = 64
TEXT_SUFFIXES = {".txt", ".md"}
EVENT_SUBMITTED = "com.harvey.document.submitted"
EVENT_INDEXED = "com.harvey.document.indexed"
EVENT_FAILED = "com.harvey.document.failed"
LEASE_S = 900  # an upload queued or processing this long without finishing is presumed lost
LOCK_WAIT_S = 60.0  # a swap waits this long for another change of the same document
MAX_REQUEUES = 3
ABANDONED = "the instance processing the document stopped {n} times before finishing; upload it again"
UNREADABLE = "The file could not be read: its content is malformed."
MAX_TITLE = 300
# One URL path segment (/documents/{id}) and a citation's source id: printable, no / ? # % or \.
_DOCUMENT_ID = re.compile(r"[^\x00-\x1f\x7f/?#%\\]{1,200}")
CONTENT_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".md": "text/markdown",
}
_KINDS = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/html": "html",
    "text/plain": "text",
    "text/markdown": "markdown",
}


class IngestError(ValueError):
    """Bad input: says which file and line."""


class QueueFull(Exception):
    """Every ingest slot of this instance is taken; retry shortly (the broker does, for events)."""


class WrongType(ValueError):
    """The bytes are not what the upload declared (415, with the parser's sentence)."""


class DocumentTooLarge(ValueError):
    """Over HARVEY_MAX_UPLOAD_BYTES (413)."""


class InvalidDocument(InvalidRequest):
    """A document id or title no document may have (400, naming the field)."""


@dataclass(frozen=True)
class SourceDocument:
    document_id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        from harvey.search.chunking import VERSION

        payload = json.dumps([self.title, self.text, self.metadata, VERSION], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class IngestResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def read_path(path: Path) -> Iterator[SourceDocument]:
    """Documents from a .jsonl file, a .txt/.md file, or a folder of those (recursively, sorted)."""
    if not path.exists():
        raise IngestError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES | {".jsonl"} and p.is_file())
        for file in files:
            yield from _read_file(file, base=path)
    else:
        yield from _read_file(path, base=path.parent)


def _read_file(file: Path, base: Path) -> Iterator[SourceDocument]:
    if file.suffix == ".jsonl":
        yield from _read_jsonl(file)
    elif file.suffix in TEXT_SUFFIXES:
        text = file.read_text(encoding="utf-8")
        title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.strip()), file.stem)
        yield SourceDocument(file.relative_to(base).as_posix(), title[:300], text, {"source_file": file.name})
    else:
        raise IngestError(f"{file}: unsupported file type (use .jsonl, .txt or .md)")


def _read_jsonl(file: Path) -> Iterator[SourceDocument]:
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise IngestError(f"{where}: not valid JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise IngestError(f"{where}: each line must be a JSON object")
            for key in ("id", "text"):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise IngestError(f"{where}: '{key}' must be a non-empty string")
            metadata = row.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise IngestError(f"{where}: 'metadata' must be an object")
            title = row.get("title") or row["id"]
            yield SourceDocument(row["id"], str(title), row["text"], metadata)


def _batches(docs: Iterable[SourceDocument]) -> Iterator[list[SourceDocument]]:
    batch: list[SourceDocument] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest(
    tenant_id: str, docs: Iterable[SourceDocument], progress: Callable[[int], None] | None = None
) -> IngestResult:
    from harvey.search.chunking import chunk_document
    from harvey.search.retrieval import open_index

    index = open_index()
    result = IngestResult()
    for batch in _batches(docs):
        known = documents.known(tenant_id, [d.document_id for d in batch])
        todo = []
        for doc in batch:
            row = known.get(doc.document_id)
            if row and row.content_hash == doc.content_hash and row.status == "indexed":
                result.unchanged += 1
            else:
                todo.append(doc)
                if row:
                    index.delete_document(tenant_id, doc.document_id)
                    result.updated += 1
                else:
                    result.added += 1
        chunks = [c for doc in todo for c in chunk_document(doc.document_id, doc.text, doc.title, doc.metadata)]
        if chunks:
            index.add(tenant_id, chunks)
        counts: dict[str, int] = {}
        for chunk in chunks:
            counts[chunk.document_id] = counts.get(chunk.document_id, 0) + 1
        for doc in todo:
            documents.record_indexed(
                tenant_id,
                doc.document_id,
                title=doc.title,
                content_hash=doc.content_hash,
                chunks=counts.get(doc.document_id, 0),
                metadata=doc.metadata,
            )
        result.chunks += len(chunks)
        if progress:
            progress(len(batch))
    if result.added or result.updated:
        cache.bump_generation(tenant_id)
    return result


# ---------------------------------------------------------------- uploads


@dataclass(frozen=True)
class Upload:
    """A file as a client sent it: its bytes, its declared type, and optionally its id and title."""

    data: bytes
    content_type: str
    document_id: str | None = None
    title: str | None = None
    origin: str = "api"  # "api", "event" or "cli"


@dataclass(frozen=True)
class Accepted:
    """What an upload became: `queued` (a new job, `job` its outcome to come), `unchanged`, or the status of
    the same bytes in flight."""

    document_id: str
    status: str
    sha256: str
    job: Future[str] | None = field(default=None, compare=False, repr=False)


def document_id_of(value: str | None, sha256: str) -> str:
    """The client's id (InvalidDocument if no document may have it), else one derived from the bytes."""
    if value is None:
        return f"doc-{sha256[:20]}"
    if not _DOCUMENT_ID.fullmatch(value) or value != value.strip() or not value.isprintable() or value in (".", ".."):
        raise InvalidDocument("document_id", "'document_id' must be 1–200 printable characters without / ? # % or \\")
    return check_text(value, "document_id")


def title_of(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(check_text(value, "title").split())
    if not value or len(value) > MAX_TITLE:
        raise InvalidDocument("title", f"'title' must be 1–{MAX_TITLE} characters")
    return value


def kind_of(content_type: str) -> str:
    """A bounded metrics label for a declared type."""
    from harvey.intake.dispatch import media_type

    return _KINDS.get(media_type(content_type)[0], "other")


@dataclass(frozen=True)
class _Prepared:
    document_id: str
    submission: documents.Submission | None  # None: nothing to do (see `accepted`)
    accepted: Accepted


def prepare(tenant_id: str, upload: Upload) -> _Prepared:
    """Everything about an upload that is knowable without parsing it; the Submission to record, or
    None with the answer when the same bytes are already indexed or in flight."""
    from harvey.intake import UnreadableDocument, UnsupportedType
    from harvey.intake.dispatch import SUPPORTED_TYPES, check_declared, media_type
    from harvey.search.chunking import VERSION

    limit = get_settings().max_upload_bytes
    if len(upload.data) > limit:
        raise DocumentTooLarge(f"the document is {len(upload.data)} bytes; the limit is {limit}")
    declared, _ = media_type(upload.content_type)
    if declared not in SUPPORTED_TYPES:
        metrics.INGEST_REJECTED.labels(reason="unsupported").inc()
        raise UnsupportedType(declared)
    if not upload.data:
        raise InvalidDocument("file", "the document is empty")
    try:
        check_declared(upload.data, declared)
    except UnreadableDocument as exc:
        metrics.INGEST_REJECTED.labels(reason="wrong_type").inc()
        raise WrongType(exc.reason) from None
    except UnsupportedType:
        metrics.INGEST_REJECTED.labels(reason="unsupported").inc()
        raise
    sha256 = hashlib.sha256(upload.data).hexdigest()
    document_id = document_id_of(upload.document_id, sha256)
    title = title_of(upload.title)
    content_hash = hashlib.sha256(json.dumps([sha256, VERSION, title], ensure_ascii=False).encode()).hexdigest()
    current = documents.get(tenant_id, document_id)
    if current is not None and current.content_hash == content_hash:
        if current.status == "indexed":
            metrics.INGEST_DOCUMENTS.labels(kind=kind_of(declared), outcome="unchanged").inc()
            return _Prepared(document_id, None, Accepted(document_id, "unchanged", sha256))
        if current.status in documents.PENDING:
            return _Prepared(document_id, None, Accepted(document_id, current.status, sha256))
    submission = documents.Submission(
        upload_id=str(uuid.uuid4()),
        title=title or "",
        title_given=title is not None,
        content_type=upload.content_type,
        sha256=sha256,
        size=len(upload.data),
        content_hash=content_hash,
        original=upload.data,
        origin=upload.origin,
    )
    return _Prepared(document_id, submission, Accepted(document_id, "queued", sha256))


def accept(tenant_id: str, upload: Upload) -> Accepted:
    """Record the upload and queue it in this process; QueueFull (nothing written) when no slot is free."""
    prepared = prepare(tenant_id, upload)
    if prepared.submission is None:
        return prepared.accepted
    submission = prepared.submission
    _, job = _queue(
        lambda: documents.submit(tenant_id, prepared.document_id, submission, LEASE_S),
        tenant_id,
        prepared.document_id,
        submission.upload_id,
    )
    return replace(prepared.accepted, job=job)


def resume(tenant_id: str, document_id: str, upload_id: str) -> Accepted | None:
    """A requeued upload (its bytes are in its row) back into this process's pool; None when it is no
    longer queued (done, replaced or deleted since)."""
    current = documents.get(tenant_id, document_id)
    if current is None or current.upload_id != upload_id or current.status != "queued":
        return None
    _, job = _queue(lambda: None, tenant_id, document_id, upload_id)
    return Accepted(document_id, "queued", current.sha256 or "", job)


def ingest_upload(tenant_id: str, upload: Upload) -> tuple[Accepted, documents.Document]:
    """`harvey ingest FILE`: the same record → parse → chunk → swap as the function, in this thread;
    what the upload became and the document's row after it."""
    prepared = prepare(tenant_id, upload)
    if prepared.submission is not None:
        upload_id = prepared.submission.upload_id
        documents.submit(tenant_id, prepared.document_id, prepared.submission, LEASE_S)
        try:
            process(tenant_id, prepared.document_id, upload_id)
        except Exception as exc:
            # No pod will retry it: say why on the row (when the stores let us), then stop the command.
            try:
                _fail(tenant_id, prepared.document_id, upload_id, f"not indexed: {exc}", kind_of(upload.content_type))
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.warning("could not mark the document failed", extra={"document_id": prepared.document_id})
            raise
    found = documents.get(tenant_id, prepared.document_id)
    assert found is not None
    return prepared.accepted, found


def _queue(prepare: Callable[[], object], tenant_id: str, document_id: str, upload_id: str):  # noqa: ANN202
    """`prepare` here, then `process` on this process's ingest pool; QueueFull (nothing done) when it is full."""
    settings = get_settings()
    workers = pool.named("ingest", settings.ingest_workers, settings.ingest_queue_depth)
    try:
        return workers.submit(prepare, lambda _: _work(tenant_id, document_id, upload_id))
    except pool.Full:
        metrics.INGEST_REJECTED.labels(reason="queue_full").inc()
        raise QueueFull("this instance's ingest queue is full; retry shortly") from None


def _work(tenant_id: str, document_id: str, upload_id: str) -> str:
    """`process` on a pool thread: its outcome, or "error" (logged; the lease brings the upload back)."""
    try:
        return process(tenant_id, document_id, upload_id)
    except Exception:  # noqa: BLE001 - a worker has nobody to raise to
        log.exception("document processing failed", extra={"document_id": document_id, "upload_id": upload_id})
        return "error"


def process(tenant_id: str, document_id: str, upload_id: str) -> str:
    """Claim, parse, chunk and index one upload: "indexed", "failed", or "skipped" (replaced or deleted
    meanwhile). A failure of the stores or of OCR itself raises (outcome "error"): the upload stays
    `processing` until its lease ends and requeue_stale_documents retries it."""
    claimed = documents.claim(tenant_id, document_id, upload_id, LEASE_S)
    if claimed is None:
        return "skipped"
    kind = kind_of(claimed.content_type)
    metrics.INGEST_QUEUE_WAIT.observe(claimed.queued_s)
    started = time.perf_counter()
    try:
        with _leased(tenant_id, document_id, upload_id):
            read = _read(claimed, document_id, upload_id)
            if isinstance(read, str):
                return _fail(tenant_id, document_id, upload_id, read, kind)
            parsed, title, chunks = read
            if not _swap(tenant_id, document_id, upload_id, chunks, parsed, title):
                return "skipped"
    except Exception:
        metrics.INGEST_DOCUMENTS.labels(kind=kind, outcome="error").inc()
        raise
    seconds = time.perf_counter() - started
    metrics.INGEST_DOCUMENTS.labels(kind=kind, outcome="indexed").inc()
    metrics.INGEST_DURATION.labels(kind=kind).observe(seconds)
    metrics.INGEST_CHUNKS.inc(len(chunks))
    metrics.INGEST_PAGES.labels(method="ocr").inc(parsed.ocr_pages)
    metrics.INGEST_PAGES.labels(method="text").inc(parsed.pages - parsed.ocr_pages)
    _tell(EVENT_INDEXED, tenant_id, document_id, chunks=len(chunks), pages=parsed.pages, ocr_pages=parsed.ocr_pages)
    log.info(
        "document indexed",
        extra={
            "document_id": document_id,
            "upload_id": upload_id,
            "kind": kind,
            "chunks": len(chunks),
            "pages": parsed.pages,
            "ocr_pages": parsed.ocr_pages,
            "seconds": round(seconds, 3),
        },
    )
    return "indexed"


def _read(claimed: documents.Claimed, document_id: str, upload_id: str) -> tuple[Any, str, list] | str:
    """(parsed, title, chunks), or the reason the file cannot be read. OCR that is not installed raises:
    a fault of the deployment, not of the document."""
    from harvey.intake import UnreadableDocument, UnsupportedType, parse
    from harvey.intake.ocr import OcrUnavailable
    from harvey.search.chunking import chunk_parsed

    try:
        parsed = parse(claimed.original, claimed.content_type, ocr=True)
        title = claimed.title if claimed.title_given else _derived_title(parsed, document_id)
        chunks = chunk_parsed(document_id, parsed, title)
    except (UnreadableDocument, UnsupportedType) as exc:
        return getattr(exc, "reason", str(exc))
    except OcrUnavailable:
        raise
    except Exception:  # noqa: BLE001 - a parser tripping on hostile bytes is an unreadable file, not a 500
        log.exception("parser error", extra={"document_id": document_id, "upload_id": upload_id})
        return UNREADABLE
    return (parsed, title, chunks) if chunks else "No text found in the document."


@contextmanager
def _leased(tenant_id: str, document_id: str, upload_id: str) -> Iterator[None]:
    """Renew the upload's lease every third of LEASE_S while the block runs: the lease then says whether
    a worker is alive, not how long a document takes."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_S / 3):
            try:
                documents.renew(tenant_id, document_id, upload_id, LEASE_S)
            except Exception:  # noqa: BLE001 - the next renewal tries again; the lease is long
                log.warning("could not renew an upload's lease", extra={"document_id": document_id})

    thread = threading.Thread(target=renew, name="harvey-ingest-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _swap(tenant_id: str, document_id: str, upload_id: str, chunks: list, parsed, title: str) -> bool:  # noqa: ANN001
    """Under the document's lock: the old chunks out, the new ones in, the row `indexed`. False when the
    upload was replaced or deleted while it was parsed. New chunks half-written by a failing store are
    taken out again before the error goes on."""
    from harvey.search.retrieval import open_index

    index = open_index()
    with documents.locked(tenant_id, document_id, LOCK_WAIT_S):
        if not documents.processing(tenant_id, document_id, upload_id):
            return False
        index.delete_document(tenant_id, document_id)
        try:
            index.add(tenant_id, chunks)
        except BaseException:
            _forget(index, tenant_id, document_id)
            raise
        documents.finish_indexed(
            tenant_id,
            document_id,
            upload_id,
            title=title,
            extracted=parsed.to_json(),
            chunks=len(chunks),
            pages=parsed.pages,
            ocr_pages=parsed.ocr_pages,
            parser=parsed.parser,
            keep_original=get_settings().store_originals,
        )
    cache.bump_generation(tenant_id)
    return True


def _forget(index, tenant_id: str, document_id: str) -> None:  # noqa: ANN001 - a retrieval.Index
    try:
        index.delete_document(tenant_id, document_id)
    except Exception:  # noqa: BLE001 - the store is why we are here; the retry deletes them again
        log.warning("could not remove half-written chunks", extra={"document_id": document_id})


def _fail(tenant_id: str, document_id: str, upload_id: str, reason: str, kind: str) -> str:
    """`failed` with the reason, and nothing of the document left in the index (an earlier version's
    chunks included: a failed document is never searchable)."""
    from harvey.search.retrieval import open_index

    with documents.locked(tenant_id, document_id, LOCK_WAIT_S):
        if not documents.finish_failed(
            tenant_id, document_id, upload_id, reason, keep_original=get_settings().store_originals
        ):
            return "skipped"
        removed = open_index().delete_document(tenant_id, document_id)
    if removed:
        cache.bump_generation(tenant_id)
    metrics.INGEST_DOCUMENTS.labels(kind=kind, outcome="failed").inc()
    _tell(EVENT_FAILED, tenant_id, document_id, error=reason)
    log.warning("document failed", extra={"document_id": document_id, "upload_id": upload_id, "reason": reason})
    return "failed"


def _tell(event_type: str, tenant_id: str, document_id: str, **facts: Any) -> None:
    """document.indexed / document.failed for whoever loads in bulk (best effort, like every event)."""
    from harvey import events

    data = {"tenant_id": tenant_id, "document_id": document_id, **facts}
    events.emit(event_type, data, subject=document_id, background=True)


def _derived_title(parsed, fallback: str) -> str:  # noqa: ANN001 - a ParsedDocument
    """The first heading, else the first line of text, else the document id."""
    heading = next((b.text for b in parsed.blocks if b.kind == "heading"), None)
    first = heading or next((b.text for b in parsed.blocks if b.text.strip()), fallback)
    line = " ".join(first.splitlines()[0].split()) if first.strip() else fallback
    return line[:MAX_TITLE].rsplit(" ", 1)[0] if len(line) > MAX_TITLE else line


def requeue_stale(tenant_ids: list[str], *, dry_run: bool = False) -> dict[str, int]:
    """Uploads left `queued` or `processing` past their lease go back to the ingest function (a
    document.submitted event naming the stored upload), or end `failed` after MAX_REQUEUES."""
    from harvey import events
    from harvey.search.retrieval import open_index

    stale = documents.stale(tenant_ids)
    if dry_run:
        return {"stale_documents": len(stale)}
    requeued = failed = 0
    for row in stale:
        context = {"document_id": row.document_id, "upload_id": row.upload_id, "status": row.status}
        if row.requeues >= MAX_REQUEUES:
            with documents.locked(row.tenant_id, row.document_id, LOCK_WAIT_S):
                reason = ABANDONED.format(n=row.requeues + 1)
                if documents.finish_failed(row.tenant_id, row.document_id, row.upload_id, reason, keep_original=False):
                    open_index().delete_document(row.tenant_id, row.document_id)
                    failed += 1
            log.error("stale upload failed", extra=context)
            continue
        if documents.requeue(row.tenant_id, row.document_id, row.upload_id, LEASE_S):
            requeued += 1
            data = {"tenant_id": row.tenant_id, "document_id": row.document_id, "upload_id": row.upload_id}
            events.emit(EVENT_SUBMITTED, data, subject=row.document_id)
            log.warning("stale upload requeued", extra=context)
    if failed:
        metrics.STALE_DOCUMENTS.labels(action="failed").inc(failed)
    if requeued:
        metrics.STALE_DOCUMENTS.labels(action="requeued").inc(requeued)
    return {"stale_documents_requeued": requeued, "stale_documents_failed": failed}


def oldest_queued_seconds() -> float | None:
    """For the queue-age gauge: None when the database cannot say (a scrape never fails on it)."""
    try:
        return documents.oldest_queued_seconds()
    except Exception:  # noqa: BLE001 - reported as absent, not raised into the scrape
        log.warning("queue age unreadable")
        return None
