-- Run status for async generation (and the text feedback spans point into), the
-- inbound-event dedupe ledger, maintenance bookkeeping and the golden dataset.

-- What happens to a tenant's feedback when retention prunes the run it is about.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS feedback_retention text NOT NULL DEFAULT 'delete_with_run'
    CHECK (feedback_retention IN ('delete_with_run', 'keep'));

-- One row per generation run that went through a function: status any instance can answer,
-- the request (to replay it as a golden case) and the response. run_audit stays append-only.
CREATE TABLE IF NOT EXISTS runs (
    run_id          uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'withheld')),
    origin          text NOT NULL CHECK (origin IN ('sync', 'async', 'event')),
    doc_type        text NOT NULL,
    request         jsonb NOT NULL,
    result          jsonb,
    error           jsonb,
    document_chars  integer,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS runs_tenant_created ON runs (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);

-- Idempotency-Key reuse with a different body is refused: remember what the key was for.
ALTER TABLE feedback_events ADD COLUMN IF NOT EXISTS request_hash text;

-- CloudEvents already taken (source + id): a redelivery finds its claim or its result here.
CREATE TABLE IF NOT EXISTS event_ledger (
    source       text NOT NULL,
    event_id     text NOT NULL,
    type         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('claimed', 'done')),
    result       jsonb,
    lease_until  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX IF NOT EXISTS event_ledger_created ON event_ledger (created_at);

-- Last outcome per maintenance task, re-exported as metrics because pods scale to zero.
CREATE TABLE IF NOT EXISTS maintenance_status (
    task             text PRIMARY KEY,
    last_success_at  timestamptz,
    last_result      jsonb,
    last_failure_at  timestamptz,
    last_error       text
);

-- Golden dataset: runs a lawyer corrected (edited text or missing sources), replayed by golden_eval.
CREATE TABLE IF NOT EXISTS golden_cases (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    run_id           uuid NOT NULL,
    doc_type         text NOT NULL,
    request          jsonb NOT NULL,
    expected_md      text,
    missing_sources  jsonb NOT NULL DEFAULT '[]'::jsonb,
    error_labels     jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, run_id)
);

CREATE TABLE IF NOT EXISTS golden_runs (
    id                     uuid PRIMARY KEY,
    eval_id                uuid NOT NULL,
    case_id                uuid NOT NULL REFERENCES golden_cases(id) ON DELETE CASCADE,
    tenant_id              uuid NOT NULL REFERENCES tenants(id),
    run_id                 uuid,
    status                 text NOT NULL,
    faithfulness           double precision,
    citations              integer,
    missing_source_recall  double precision,
    text_f1                double precision,
    error                  text,
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS golden_runs_eval ON golden_runs (eval_id);
