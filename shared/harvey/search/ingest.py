"""Bring a tenant's documents into the index, idempotently.

A document whose content hash is unchanged is skipped; a changed one has its old
chunks replaced. The `documents` row is written after the chunks, so a crash in
between leaves an old hash behind and the next ingest simply redoes that document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harvey.search import cache
from harvey.store import db

BATCH = 64
TEXT_SUFFIXES = {".txt", ".md"}


class IngestError(ValueError):
    """Bad input: says which file and line."""


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
        known = {
            r["document_id"]: r
            for r in db.query(
                "SELECT document_id, content_hash, status FROM documents "
                "WHERE tenant_id = CAST(:tenant AS uuid) AND document_id = ANY(:ids)",
                tenant=tenant_id,
                ids=[d.document_id for d in batch],
            )
        }
        todo = []
        for doc in batch:
            row = known.get(doc.document_id)
            if row and row["content_hash"] == doc.content_hash and row["status"] == "indexed":
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
            db.query(
                "INSERT INTO documents (tenant_id, document_id, title, content_hash, chunk_count, metadata) "
                "VALUES (CAST(:tenant AS uuid), :doc, :title, :hash, :chunks, CAST(:meta AS jsonb)) "
                "ON CONFLICT (tenant_id, document_id) DO UPDATE SET title = EXCLUDED.title, "
                "content_hash = EXCLUDED.content_hash, chunk_count = EXCLUDED.chunk_count, "
                "metadata = EXCLUDED.metadata, status = 'indexed', updated_at = now()",
                tenant=tenant_id,
                doc=doc.document_id,
                title=doc.title,
                hash=doc.content_hash,
                chunks=counts.get(doc.document_id, 0),
                meta=db.jsonb(doc.metadata),
            )
        result.chunks += len(chunks)
        if progress:
            progress(len(batch))
    if result.added or result.updated:
        cache.bump_generation(tenant_id)
    return result
