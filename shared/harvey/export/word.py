"""A stored run as a Word document, in its tenant's letterhead when it has one."""

from __future__ import annotations

from harvey.export.docx import ExportedDraft, render


class NotExportable(LookupError):
    """The run exists but has no document to export (still running, failed, or withheld)."""


def for_run(tenant_id: str, run_id: str) -> bytes | None:
    """The .docx of the tenant's run; None when the tenant has no such run (another tenant's is None too)."""
    from harvey.drafting import runs
    from harvey.store import templates

    row = runs.get(tenant_id, run_id)
    if row is None:
        return None
    result = row["result"] or {}
    if row["status"] != "succeeded" or not result.get("document_md"):
        raise NotExportable(f"run {run_id} has no document to export (status {row['status']})")
    draft = ExportedDraft(
        run_id=str(row["run_id"]),
        document_md=result["document_md"],
        model_used=result["model_used"],
        output_hash=_sha256(result["document_md"]),
        doc_type=row["doc_type"],
        created_at=row["created_at"],
    )
    return render(draft, templates.get(tenant_id))


def _sha256(text: str) -> str:
    from harvey.store.audit import sha256_text

    return sha256_text(text)  # the audit row's output_hash: the same function over the same text
