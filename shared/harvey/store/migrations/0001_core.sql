-- Tenants, hashed API keys, indexed documents and the tamper-evident run audit.
CREATE TABLE IF NOT EXISTS tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    logs_only       boolean NOT NULL DEFAULT false,
    force_fallback  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    key_hash    text NOT NULL UNIQUE,
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS documents (
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    document_id   text NOT NULL,
    title         text NOT NULL,
    content_hash  text NOT NULL,
    chunk_count   integer NOT NULL,
    status        text NOT NULL DEFAULT 'indexed' CHECK (status IN ('indexed', 'purged')),
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, document_id)
);

CREATE TABLE IF NOT EXISTS run_audit (
    run_id               uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants(id),
    seq                  bigint NOT NULL,
    user_id              text,
    task                 text NOT NULL,
    doc_type             text,
    started_at           timestamptz NOT NULL,
    ended_at             timestamptz NOT NULL,
    success              boolean NOT NULL,
    error_message        text,
    input_hash           text NOT NULL,
    output_hash          text,
    context_docs_hash    text,
    prompt_version       text NOT NULL,
    agent_trace          jsonb NOT NULL DEFAULT '[]'::jsonb,
    policy_snapshot      jsonb NOT NULL DEFAULT '{}'::jsonb,
    pii_report           jsonb NOT NULL DEFAULT '{}'::jsonb,
    sources_used         jsonb NOT NULL DEFAULT '[]'::jsonb,
    faithfulness_report  jsonb NOT NULL DEFAULT '{}'::jsonb,
    estimated_cost_usd   double precision NOT NULL DEFAULT 0,
    tokens_input         integer NOT NULL DEFAULT 0,
    tokens_output        integer NOT NULL DEFAULT 0,
    execution_time_ms    integer NOT NULL DEFAULT 0,
    request_id           text,
    model_used           text,
    created_at           timestamptz NOT NULL,
    prev_hash            text NOT NULL,
    row_hash             text NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX IF NOT EXISTS run_audit_tenant_created ON run_audit (tenant_id, created_at);

-- Where the per-tenant chain starts after retention pruned its oldest rows.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants(id),
    seq         bigint NOT NULL,
    row_hash    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS feedback_events (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    run_id           uuid NOT NULL,
    user_id          text,
    rating           smallint NOT NULL CHECK (rating IN (-1, 0, 1)),
    comment          text,
    error_spans      jsonb NOT NULL DEFAULT '[]'::jsonb,
    missing_sources  jsonb NOT NULL DEFAULT '[]'::jsonb,
    edited_text_md   text,
    tags             jsonb NOT NULL DEFAULT '[]'::jsonb,
    dedupe_key       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX IF NOT EXISTS feedback_events_tenant_run ON feedback_events (tenant_id, run_id);
CREATE INDEX IF NOT EXISTS feedback_events_tenant_created ON feedback_events (tenant_id, created_at);

CREATE TABLE IF NOT EXISTS temp_data (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS temp_data_created ON temp_data (created_at);
