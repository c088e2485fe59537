"""Feedback ingestion: events/s through the feedback function vs a bare pg8000 insert loop.

The function path is functions-framework's own Flask app (test client, no network):
JSON over HTTP with a Bearer key, and CloudEvents in binary mode (with dedupe). The
baseline inserts the same rows with one pg8000 statement each. Medians of RUNS runs,
printed as a markdown table fragment. Works in a private database on DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/test), dropped after.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
EVENTS = int(os.environ.get("BENCH_FEEDBACK_EVENTS", "400"))
BASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DOCUMENT = "# Petição inicial\n\n" + "O autor requer a repetição do indébito em dobro [1]. " * 40


def main() -> None:
    import pg8000.native
    from harvey.db import connect_params

    name = f"harvey_bench_feedback_{uuid.uuid4().hex[:8]}"
    admin = pg8000.native.Connection(**connect_params(BASE_URL))
    admin.run(f"CREATE DATABASE {name}")
    os.environ.update({"DATABASE_URL": f"{BASE_URL.rsplit('/', 1)[0]}/{name}", "HARVEY_LOG_LEVEL": "WARNING"})
    os.environ.pop("K_SINK", None)
    from harvey.config import get_settings

    get_settings.cache_clear()  # connect_params above read the settings before DATABASE_URL was set
    try:
        print(run())
    finally:
        from harvey import db

        db.reset()
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def body(run_id: str, i: int) -> dict:
    return {
        "run_id": run_id, "rating": (i % 3) - 1, "comment": "faltou fundamentação",
        "error_spans": [{"start": 20, "end": 60, "label": "fundamentacao"}],
        "missing_sources": [{"raw": "CDC art. 42", "class": "legislacao", "relevance_score": 0.7}],
        "tags": ["bench"],
    }  # fmt: skip


def run() -> str:
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent
    from functions_framework import create_app
    from harvey import db, runs, tenants
    from harvey.db import connect_params, database_url
    from harvey.pipeline import GenerateInput

    db.migrate()
    tenant, key = tenants.create("bench")
    run_id = str(uuid.uuid4())
    runs.create(tenant, GenerateInput(doc_type="peticao_inicial", task="bench"), run_id=run_id, origin="sync")
    db.query("UPDATE runs SET status = 'succeeded', document_chars = :n WHERE run_id = CAST(:r AS uuid)",
             n=len(DOCUMENT), r=run_id)  # fmt: skip
    client = create_app("feedback", "functions/feedback/main.py").test_client()
    auth = {"Authorization": f"Bearer {key}"}

    def http() -> None:
        for i in range(EVENTS):
            response = client.post("/", data=json.dumps(body(run_id, i)), headers=auth, content_type="application/json")
            assert response.status_code == 201, response.get_data(as_text=True)

    def cloudevents() -> None:
        for i in range(EVENTS):
            event = CloudEvent({"type": "com.harvey.feedback.submitted", "source": "/bench"},
                               {"tenant_id": tenant.id, **body(run_id, i)})  # fmt: skip
            headers, data = to_binary(event)
            assert client.post("/", data=data, headers=dict(headers)).status_code == 201

    import pg8000.native

    con = pg8000.native.Connection(**connect_params(database_url()))

    def bare() -> None:
        for i in range(EVENTS):
            b = body(run_id, i)
            con.run(
                "INSERT INTO feedback_events (id, tenant_id, run_id, rating, comment, error_spans, "
                "missing_sources, "
                "tags) VALUES (CAST(:id AS uuid), CAST(:t AS uuid), CAST(:r AS uuid), :rating, :comment, "
                "CAST(:spans AS jsonb), CAST(:missing AS jsonb), CAST(:tags AS jsonb))",
                id=str(uuid.uuid4()), t=tenant.id, r=run_id, rating=b["rating"], comment=b["comment"],
                spans=json.dumps(b["error_spans"]), missing=json.dumps(b["missing_sources"]),
                tags='["bench"]',
            )  # fmt: skip

    http()  # warm-up: imports, connections, plans
    rates = {}
    paths = (
        ("bare pg8000 INSERT loop (baseline)", bare),
        ("feedback function, JSON + Bearer key", http),
        ("feedback function, CloudEvent (binary, deduped)", cloudevents),
    )
    for label, work in paths:
        samples = []
        for _ in range(RUNS):
            started = time.perf_counter()
            work()
            samples.append(EVENTS / (time.perf_counter() - started))
        rates[label] = statistics.median(samples)
    con.close()
    base = rates["bare pg8000 INSERT loop (baseline)"]
    lines = [f"| feedback ingestion ({EVENTS} events × {RUNS} runs, median) | events/s | vs bare insert |",
             "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {label} | {rate:,.0f} | {rate / base:.2f}× |" for label, rate in rates.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
