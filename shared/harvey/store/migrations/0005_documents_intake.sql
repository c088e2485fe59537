-- Documents in through the ingest function (issue 11): each upload walks queued → processing →
-- indexed | failed, and a purge (DELETE /documents/{id}) ends it as 'purged' (shown as "deleted").
-- The row keeps what the parser found (its blocks with page and heading path: a reindex never needs
-- the original), the original's SHA-256 and size, and the original itself only while it waits for a
-- worker, or for good when HARVEY_STORE_ORIGINALS is on.
ALTER TABLE documents DROP CONSTRAINT IF EXISTS documents_status_check;
ALTER TABLE documents ADD CONSTRAINT documents_status_check
    CHECK (status IN ('queued', 'processing', 'indexed', 'failed', 'purged'));
ALTER TABLE documents ALTER COLUMN chunk_count SET DEFAULT 0;
ALTER TABLE documents
    ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'cli' CHECK (origin IN ('cli', 'api', 'event')),
    ADD COLUMN IF NOT EXISTS upload_id uuid,
    ADD COLUMN IF NOT EXISTS title_given boolean NOT NULL DEFAULT true,
    ADD COLUMN IF NOT EXISTS content_type text,
    ADD COLUMN IF NOT EXISTS sha256 text,
    ADD COLUMN IF NOT EXISTS bytes bigint,
    ADD COLUMN IF NOT EXISTS pages integer,
    ADD COLUMN IF NOT EXISTS ocr_pages integer,
    ADD COLUMN IF NOT EXISTS parser text,
    ADD COLUMN IF NOT EXISTS error text,
    ADD COLUMN IF NOT EXISTS extracted jsonb,
    ADD COLUMN IF NOT EXISTS original bytea,
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS queued_at timestamptz,
    ADD COLUMN IF NOT EXISTS lease_until timestamptz;

-- GET /documents?status=…&cursor=…: keyset pages in document_id order, with or without a status.
CREATE INDEX IF NOT EXISTS documents_tenant_status ON documents (tenant_id, status, document_id);
-- requeue_stale_documents and the queue-age gauge read only the uploads still waiting or running.
CREATE INDEX IF NOT EXISTS documents_pending ON documents (lease_until) WHERE status IN ('queued', 'processing');
