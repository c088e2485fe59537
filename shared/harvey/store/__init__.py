"""Durable state: PostgreSQL (pool, migrations) and Redis, and the one owner module per table.

`tenants` owns tenants, `audit` the hash-chained run_audit, `feedback` feedback, `ledger` the
processed-event ledger; `breaker` and `limits` keep their shared state in Redis through `redis`.
"""
