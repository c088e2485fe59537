"""Retention throughput: delete 1,000,000 expired temp_data rows while a writer keeps inserting.

Prints a markdown table fragment: rows deleted, rows/s, and the insert latency a concurrent
writer saw meanwhile (worst and p99) — the batches must never stall it. Works in a private
database on DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test), dropped after.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid

ROWS = int(os.environ.get("BENCH_RETENTION_ROWS", "1000000"))
BASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def main() -> None:
    import pg8000.native
    from harvey.store.db import connect_params

    name = f"harvey_bench_retention_{uuid.uuid4().hex[:8]}"
    admin = pg8000.native.Connection(**connect_params(BASE_URL))
    admin.run(f"CREATE DATABASE {name}")
    url = f"{BASE_URL.rsplit('/', 1)[0]}/{name}"
    os.environ.update({"DATABASE_URL": url, "HARVEY_LOG_LEVEL": "WARNING"})
    os.environ.pop("K_SINK", None)
    from harvey.config import get_settings

    get_settings.cache_clear()  # connect_params above read the settings before DATABASE_URL was set
    try:
        print(run(url))
    finally:
        from harvey.store import db

        db.reset()
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def run(url: str) -> str:
    import pg8000.native
    from harvey import logs
    from harvey.ops import tasks
    from harvey.store import db, tenants
    from harvey.store.db import connect_params

    logs.setup("WARNING")
    db.migrate()
    tenant, _ = tenants.create("bench")
    started = time.perf_counter()
    for first in range(1, ROWS + 1, 100_000):  # chunks: each statement stays under db's socket timeout
        db.query(
            "INSERT INTO temp_data (id, tenant_id, kind, created_at) SELECT gen_random_uuid(), CAST(:t AS "
            "uuid), "
            "'upload', now() - interval '40 days' - make_interval(secs => g) FROM generate_series(CAST(:a "
            "AS int), CAST(:b AS int)) g",
            t=tenant.id,
            a=first,
            b=min(first + 99_999, ROWS),
        )
    db.query("ANALYZE temp_data")
    fill_s = time.perf_counter() - started

    stop = threading.Event()
    latencies: list[float] = []

    def writer() -> None:
        con = pg8000.native.Connection(**connect_params(url))
        while not stop.is_set():
            t = time.perf_counter()
            con.run(
                "INSERT INTO temp_data (id, tenant_id, kind) VALUES (CAST(:id AS uuid), CAST(:t AS uuid), 'live')",
                id=str(uuid.uuid4()),
                t=tenant.id,
            )
            latencies.append(time.perf_counter() - t)
        con.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)  # the writer's baseline before retention starts
    baseline = list(latencies)
    result = tasks.run("retention", tasks.Params(budget_s=600))
    stop.set()
    thread.join()
    during = latencies[len(baseline) :]
    left = db.one("SELECT count(*) AS n FROM temp_data WHERE kind = 'upload'")["n"]
    live = db.one("SELECT count(*) AS n FROM temp_data WHERE kind = 'live'")["n"]
    assert left == 0 and live == len(latencies), (left, live, len(latencies))
    deleted, seconds = result["temp_data_deleted"], result["seconds"]
    p99 = statistics.quantiles(during, n=100)[98] if len(during) >= 100 else max(during)
    rows = [
        ("expired rows created (INSERT … SELECT generate_series)", f"{ROWS:,} in {fill_s:.1f} s"),
        ("rows deleted by `retention`", f"{deleted:,} in {seconds:.1f} s"),
        ("retention rate", f"**{deleted / seconds:,.0f} rows/s** (batches of 5,000, one transaction each)"),
        ("concurrent writer: inserts during retention", f"{len(during):,} (all committed)"),
        (
            "concurrent writer: median / p99 / worst insert latency",
            f"{statistics.median(during) * 1000:.2f} / {p99 * 1000:.2f} / **{max(during) * 1000:.1f} ms**",
        ),
        ("concurrent writer: worst latency before retention", f"{max(baseline) * 1000:.1f} ms"),
    ]
    lines = ["| retention (temp_data) | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
