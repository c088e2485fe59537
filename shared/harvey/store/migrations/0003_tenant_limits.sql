-- Per-tenant limits (harvey tenant limits): NULL means unlimited.
-- requests_per_minute: a token bucket in Redis (capacity = rpm) checked on every authenticated request.
-- monthly_budget_usd: generation is refused once the calendar month's (UTC) run_audit.estimated_cost_usd
-- reaches it.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS requests_per_minute integer
    CHECK (requests_per_minute IS NULL OR requests_per_minute > 0);
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS monthly_budget_usd double precision
    CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd > 0);
