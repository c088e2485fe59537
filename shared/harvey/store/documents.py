"""The `documents` table: one row per document of a tenant, and the only module that writes it.

Two ways in share the table. `.jsonl` records from `harvey ingest` are indexed at once
(`known`, `record_indexed`). Uploads (the ingest function, and files given to `harvey ingest`)
walk a lifecycle: `submit` writes the row `queued` with the original's bytes and a lease; a
worker `claim`s it (`processing`, lease renewed); `finish_indexed` or `finish_failed` closes it,
dropping the bytes unless the tenant's originals are kept. Every transition names the upload it
is for (`upload_id`), so a worker whose upload was replaced or deleted meanwhile changes nothing.
A row left `queued` or `processing` past its lease (its pod died) is found by `stale` and either
`requeue`d (counted in `attempts`) or failed by the maintenance task.

Index changes of one document (replacing its chunks, purging it) run under `locked`, an advisory
lock across pods, so two versions of a document are never both indexed.

Statuses are stored as clients see them except one: a purged document is stored 'purged' (the
maintenance task's word, kept by its audit rows) and shown as "deleted".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harvey.store import db

STATUSES = ("queued", "processing", "indexed", "failed", "deleted")
PENDING = ("queued", "processing")
_STORED = {"deleted": "purged"}
_SHOWN = {"purged": "deleted"}
# Advisory-lock space of document locks (audit appends lock single bigint keys: a different space).
_LOCK_SPACE = 7331011


class DocumentBusy(Exception):
    """Another pod is changing this document's chunks right now (409: retry shortly)."""

    def __init__(self, document_id: str, retry_after: int = 5):
        super().__init__(f"document {document_id!r} is being indexed or deleted by another request; retry shortly")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Document:
    """A row as clients and the ingest pipeline read it."""

    document_id: str
    status: str
    title: str
    content_type: str | None
    sha256: str | None
    bytes: int | None
    pages: int | None
    ocr_pages: int | None
    chunks: int
    parser: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    content_hash: str
    upload_id: str | None


_COLUMNS = (
    "document_id, status, title, content_type, sha256, bytes, pages, ocr_pages, chunk_count, parser, error, "
    "created_at, updated_at, content_hash, upload_id"
)


def _document(row: dict[str, Any]) -> Document:
    return Document(
        document_id=row["document_id"],
        status=_SHOWN.get(row["status"], row["status"]),
        title=row["title"],
        content_type=row["content_type"],
        sha256=row["sha256"],
        bytes=row["bytes"],
        pages=row["pages"],
        ocr_pages=row["ocr_pages"],
        chunks=row["chunk_count"],
        parser=row["parser"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        content_hash=row["content_hash"],
        upload_id=str(row["upload_id"]) if row["upload_id"] else None,
    )


def get(tenant_id: str, document_id: str) -> Document | None:
    row = db.one(
        f"SELECT {_COLUMNS} FROM documents WHERE tenant_id = CAST(:t AS uuid) AND document_id = :d",  # noqa: S608
        t=tenant_id,
        d=document_id,
    )
    return _document(row) if row else None


def listing(tenant_id: str, *, status: str | None, after: str | None, limit: int) -> list[Document]:
    """Up to `limit` documents in document_id order after `after` (keyset: every page costs the same)."""
    rows = db.query(
        f"SELECT {_COLUMNS} FROM documents WHERE tenant_id = CAST(:t AS uuid) "  # noqa: S608
        "AND (CAST(:status AS text) IS NULL OR status = :status) "
        "AND (CAST(:after AS text) IS NULL OR document_id > :after) ORDER BY document_id LIMIT :limit",
        t=tenant_id,
        status=_STORED.get(status, status) if status else None,
        after=after,
        limit=limit,
    )
    return [_document(r) for r in rows]


def known(tenant_id: str, document_ids: list[str]) -> dict[str, Document]:
    rows = db.query(
        f"SELECT {_COLUMNS} FROM documents WHERE tenant_id = CAST(:t AS uuid) AND document_id = ANY(:ids)",  # noqa: S608
        t=tenant_id,
        ids=document_ids,
    )
    return {r["document_id"]: _document(r) for r in rows}


def record_indexed(
    tenant_id: str, document_id: str, *, title: str, content_hash: str, chunks: int, metadata: dict[str, Any]
) -> None:
    """A `.jsonl` record whose chunks are in the index (written after them: a crash in between leaves the
    old hash, and the next ingest redoes the document)."""
    db.query(
        "INSERT INTO documents (tenant_id, document_id, title, content_hash, chunk_count, metadata) "
        "VALUES (CAST(:tenant AS uuid), :doc, :title, :hash, :chunks, CAST(:meta AS jsonb)) "
        "ON CONFLICT (tenant_id, document_id) DO UPDATE SET title = EXCLUDED.title, "
        "content_hash = EXCLUDED.content_hash, chunk_count = EXCLUDED.chunk_count, "
        "metadata = EXCLUDED.metadata, status = 'indexed', origin = 'cli', upload_id = NULL, error = NULL, "
        "lease_until = NULL, original = NULL, extracted = NULL, updated_at = now()",
        tenant=tenant_id,
        doc=document_id,
        title=title,
        hash=content_hash,
        chunks=chunks,
        meta=db.jsonb(metadata),
    )


@dataclass(frozen=True)
class Submission:
    """One upload of a document, as `submit` records it."""

    upload_id: str
    title: str
    title_given: bool
    content_type: str
    sha256: str
    size: int
    content_hash: str
    original: bytes
    origin: str  # "api", "event" or "cli"


def submit(tenant_id: str, document_id: str, upload: Submission, lease_s: float) -> None:
    """The document's row is now this upload, `queued` with its bytes: replaced, or new. A previous
    version's chunks stay searchable (and `chunks` keeps counting them) until a worker swaps them."""
    db.query(
        "INSERT INTO documents (tenant_id, document_id, title, content_hash, chunk_count, status, origin, upload_id, "
        "title_given, content_type, sha256, bytes, original, queued_at, lease_until) "
        "VALUES (CAST(:t AS uuid), :d, :title, :hash, 0, 'queued', :origin, CAST(:upload AS uuid), :given, :type, "
        ":sha, :size, :original, now(), now() + make_interval(secs => :lease)) "
        "ON CONFLICT (tenant_id, document_id) DO UPDATE SET status = 'queued', origin = EXCLUDED.origin, "
        "upload_id = EXCLUDED.upload_id, title = EXCLUDED.title, title_given = EXCLUDED.title_given, "
        "content_hash = EXCLUDED.content_hash, content_type = EXCLUDED.content_type, sha256 = EXCLUDED.sha256, "
        "bytes = EXCLUDED.bytes, original = EXCLUDED.original, pages = NULL, ocr_pages = NULL, parser = NULL, "
        "error = NULL, attempts = 0, queued_at = now(), lease_until = EXCLUDED.lease_until, updated_at = now(), "
        "chunk_count = CASE WHEN documents.status = 'indexed' THEN documents.chunk_count ELSE 0 END",
        t=tenant_id,
        d=document_id,
        title=upload.title,
        hash=upload.content_hash,
        origin=upload.origin,
        upload=upload.upload_id,
        given=upload.title_given,
        type=upload.content_type,
        sha=upload.sha256,
        size=upload.size,
        original=upload.original,
        lease=float(lease_s),
    )


@dataclass(frozen=True)
class Claimed:
    """What a worker needs to process the upload it claimed."""

    original: bytes
    content_type: str
    title: str
    title_given: bool
    sha256: str
    queued_s: float


def claim(tenant_id: str, document_id: str, upload_id: str, lease_s: float) -> Claimed | None:
    """Take a queued upload for this worker; None when it was replaced, deleted or taken meanwhile."""
    row = db.one(
        "UPDATE documents SET status = 'processing', updated_at = now(), "
        "lease_until = now() + make_interval(secs => :lease) WHERE tenant_id = CAST(:t AS uuid) "
        "AND document_id = :d AND upload_id = CAST(:u AS uuid) AND status = 'queued' AND original IS NOT NULL "
        "RETURNING original, content_type, title, title_given, sha256, "
        "EXTRACT(EPOCH FROM now() - queued_at)::float8 AS queued_s",
        t=tenant_id,
        d=document_id,
        u=upload_id,
        lease=float(lease_s),
    )
    if row is None:
        return None
    return Claimed(
        original=bytes(row["original"]),
        content_type=row["content_type"],
        title=row["title"],
        title_given=row["title_given"],
        sha256=row["sha256"],
        queued_s=max(0.0, float(row["queued_s"] or 0.0)),
    )


def renew(tenant_id: str, document_id: str, upload_id: str, lease_s: float) -> None:
    """A worker still at it pushes its lease on: a long OCR is not mistaken for a dead pod."""
    db.query(
        "UPDATE documents SET lease_until = now() + make_interval(secs => :lease) WHERE tenant_id = CAST(:t AS uuid) "
        "AND document_id = :d AND upload_id = CAST(:u AS uuid) AND status = 'processing'",
        t=tenant_id,
        d=document_id,
        u=upload_id,
        lease=float(lease_s),
    )


def processing(tenant_id: str, document_id: str, upload_id: str) -> bool:
    """Whether this upload is still the one being processed (asked under `locked`, before the swap)."""
    row = db.one(
        "SELECT 1 AS x FROM documents WHERE tenant_id = CAST(:t AS uuid) AND document_id = :d "
        "AND upload_id = CAST(:u AS uuid) AND status = 'processing'",
        t=tenant_id,
        d=document_id,
        u=upload_id,
    )
    return row is not None


def finish_indexed(
    tenant_id: str,
    document_id: str,
    upload_id: str,
    *,
    title: str,
    extracted: str,
    chunks: int,
    pages: int,
    ocr_pages: int,
    parser: str,
    keep_original: bool,
) -> bool:
    """`indexed`, with what the parser found (`extracted`: ParsedDocument.to_json())."""
    row = db.one(
        "UPDATE documents SET status = 'indexed', title = :title, extracted = CAST(:extracted AS jsonb), "
        "chunk_count = :chunks, pages = :pages, ocr_pages = :ocr, parser = :parser, error = NULL, "
        "lease_until = NULL, original = CASE WHEN :keep THEN original END, updated_at = now() "
        "WHERE tenant_id = CAST(:t AS uuid) AND document_id = :d AND upload_id = CAST(:u AS uuid) "
        "AND status = 'processing' RETURNING 1 AS x",
        t=tenant_id,
        d=document_id,
        u=upload_id,
        title=title,
        extracted=extracted,
        chunks=chunks,
        pages=pages,
        ocr=ocr_pages,
        parser=parser,
        keep=keep_original,
    )
    return row is not None


def finish_failed(tenant_id: str, document_id: str, upload_id: str, error: str, *, keep_original: bool) -> bool:
    """`failed` with a reason the user can read; its chunks are already out of the index."""
    row = db.one(
        "UPDATE documents SET status = 'failed', error = :error, chunk_count = 0, extracted = NULL, "
        "lease_until = NULL, original = CASE WHEN :keep THEN original END, updated_at = now() "
        "WHERE tenant_id = CAST(:t AS uuid) AND document_id = :d AND upload_id = CAST(:u AS uuid) "
        "AND status IN ('queued', 'processing') RETURNING 1 AS x",
        t=tenant_id,
        d=document_id,
        u=upload_id,
        error=error[:2000],
        keep=keep_original,
    )
    return row is not None


@dataclass(frozen=True)
class Stale:
    tenant_id: str
    document_id: str
    upload_id: str
    status: str
    requeues: int


def stale(tenant_ids: list[str], limit: int = 500) -> list[Stale]:
    """Uploads still `queued` or `processing` past their lease: the pod holding them is gone."""
    rows = db.query(
        "SELECT tenant_id, document_id, upload_id, status, attempts FROM documents "
        "WHERE status IN ('queued', 'processing') AND lease_until < now() "
        "AND tenant_id = ANY(CAST(:tenants AS uuid[])) ORDER BY lease_until LIMIT :limit",
        tenants=tenant_ids,
        limit=limit,
    )
    return [Stale(str(r["tenant_id"]), r["document_id"], str(r["upload_id"]), r["status"], r["attempts"]) for r in rows]


def requeue(tenant_id: str, document_id: str, upload_id: str, lease_s: float) -> bool:
    """A stale upload goes back to `queued` with a fresh lease (its bytes are still in the row)."""
    row = db.one(
        "UPDATE documents SET status = 'queued', attempts = attempts + 1, "
        "lease_until = now() + make_interval(secs => :lease), "
        "updated_at = now() WHERE tenant_id = CAST(:t AS uuid) AND document_id = :d "
        "AND upload_id = CAST(:u AS uuid) AND status IN ('queued', 'processing') AND lease_until < now() "
        "AND original IS NOT NULL RETURNING 1 AS x",
        t=tenant_id,
        d=document_id,
        u=upload_id,
        lease=float(lease_s),
    )
    return row is not None


def purge(tenant_id: str, document_id: str) -> None:
    """The document's chunks are out of the index: keep its row (the audit trail names it), drop its text."""
    db.query(
        "UPDATE documents SET status = 'purged', extracted = NULL, original = NULL, lease_until = NULL, "
        "updated_at = now() WHERE tenant_id = CAST(:t AS uuid) AND document_id = :d",
        t=tenant_id,
        d=document_id,
    )


def oldest_queued_seconds() -> float | None:
    """Age of the oldest upload waiting for a worker, all tenants (the queue-age gauge): since it arrived,
    so a requeued upload counts its whole wait."""
    row = db.one(
        "SELECT EXTRACT(EPOCH FROM now() - min(queued_at))::float8 AS age FROM documents WHERE status = 'queued'"
    )
    return float(row["age"]) if row and row["age"] is not None else None


@contextmanager
def locked(tenant_id: str, document_id: str, wait_s: float) -> Iterator[None]:
    """Hold the document's lock (a transaction-scoped advisory lock) for the block; DocumentBusy when
    another holder keeps it past `wait_s`. Statements in the block run in that transaction."""
    deadline = time.monotonic() + wait_s
    with db.transaction():
        while not db.query(
            "SELECT pg_try_advisory_xact_lock(CAST(:space AS int), hashtext(:key)) AS ok",
            space=_LOCK_SPACE,
            key=f"{tenant_id}\x1f{document_id}",
        )[0]["ok"]:
            if time.monotonic() >= deadline:
                raise DocumentBusy(document_id)
            time.sleep(0.2)
        yield
