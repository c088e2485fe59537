-- A firm's letterhead (.docx) per tenant: Word exports place the draft inside it.
CREATE TABLE IF NOT EXISTS tenant_templates (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    docx        bytea NOT NULL,
    sha256      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
