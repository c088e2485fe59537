"""Per-tenant letterheads (`tenant_templates`): the .docx a Word export places the draft inside."""

from __future__ import annotations

import hashlib

from harvey.store import db


def put(tenant_id: str, docx: bytes) -> str:
    """Store (or replace) the tenant's letterhead; its SHA-256."""
    digest = hashlib.sha256(docx).hexdigest()
    db.query(
        "INSERT INTO tenant_templates (tenant_id, docx, sha256) VALUES (CAST(:t AS uuid), :docx, :sha) "
        "ON CONFLICT (tenant_id) DO UPDATE SET docx = EXCLUDED.docx, sha256 = EXCLUDED.sha256, updated_at = now()",
        t=tenant_id,
        docx=docx,
        sha=digest,
    )
    return digest


def get(tenant_id: str) -> bytes | None:
    row = db.one("SELECT docx FROM tenant_templates WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id)
    return bytes(row["docx"]) if row else None


def remove(tenant_id: str) -> bool:
    return bool(
        db.query("DELETE FROM tenant_templates WHERE tenant_id = CAST(:t AS uuid) RETURNING tenant_id", t=tenant_id)
    )
