"""A fast slice of `make chaos` (bench/chaos.py) for the suite.

Acknowledged feedback survives a PostgreSQL crash (`pg_ctl restart -m immediate` of a private
pgserver cluster this test starts and removes — never the machine's shared server) exactly once,
and a primary model that never answers costs little once its breaker is open.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from harvey.store import db

from tests.conftest import pg_ctl
from tests.support.fake_openai import FakeOpenAI

DRAFT = {"doc_type": "parecer", "task": "Prazo para reclamar de vício de produto durável"}


def test_acknowledged_feedback_survives_a_postgres_crash_once_each(private_pg):
    from functions_framework import create_app
    from harvey.drafting import runs
    from harvey.store import tenants

    tenant, key = tenants.create(f"faults-{uuid.uuid4().hex[:6]}")
    run_id = str(uuid.uuid4())
    runs.create(tenant, runs.parse(DRAFT, None), run_id=run_id, origin="sync", status="succeeded")
    app = create_app("feedback", "functions/feedback/main.py")
    acked: dict[str, str] = {}
    statuses: list[int] = []
    lock, stop = threading.Lock(), threading.Event()

    def client(n: int) -> None:
        http = app.test_client()
        i = 0
        while not stop.is_set():
            idem = f"crash-{n}-{i}"
            for _ in range(100):  # a real client: retry 503/429 with the same key
                answer = http.post(
                    "/",
                    json={"run_id": run_id, "rating": 1, "comment": idem},
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
                )
                with lock:
                    statuses.append(answer.status_code)
                    if answer.status_code in (200, 201):
                        acked[idem] = answer.get_json()["id"]
                if answer.status_code not in (429, 503):
                    break
                time.sleep(0.1)
            i += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    time.sleep(1.5)
    before = len(acked)
    pg_ctl(private_pg, "-w", "-m", "immediate", "restart")
    back = len(acked)
    time.sleep(1.5)
    stop.set()
    for w in workers:
        w.join(60)

    db.reset()
    rows = db.query(
        "SELECT comment, id::text AS id FROM feedback_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant.id
    )
    stored: dict[str, list[str]] = {}
    for row in rows:
        stored.setdefault(row["comment"], []).append(row["id"])
    assert before > 0 and len(acked) > back, "feedback was acknowledged before and after the crash"
    assert [k for k in acked if k not in stored] == [], "acknowledged feedback was lost"
    assert {k: v for k, v in stored.items() if len(v) > 1} == {}, "feedback was stored twice"
    assert all(stored[k] == [acked[k]] for k in acked), "a retry answered with another row's id"
    assert set(statuses) <= {200, 201, 503}, f"unexpected statuses {sorted(set(statuses))}"


def test_a_hanging_primary_costs_little_once_its_breaker_is_open(indexed_tenant, settings_env):
    from functions_framework import create_app
    from harvey.store import breaker

    _, key = indexed_tenant
    http = create_app("generate", "functions/generate/main.py").test_client()

    def draft() -> tuple[float, dict]:
        started = time.monotonic()
        answer = http.post(
            "/", data=json.dumps(DRAFT), headers={"Authorization": f"Bearer {key}"}, content_type="application/json"
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        return time.monotonic() - started, answer.get_json()

    draft()  # warm: models loaded, index open
    baseline = draft()[0]
    timeout = 1.5
    dead = f"slow-{uuid.uuid4().hex[:6]}"  # its own breaker, shared with no other test
    with FakeOpenAI(slow_seconds=10) as fake:
        settings_env(
            HARVEY_LLM_MODELS=f"openai/{dead},harvey/extractive",
            HARVEY_LLM_API_BASE=fake.url,
            HARVEY_LLM_TIMEOUT_S=str(timeout),
            HARVEY_BREAKER_FAILURES="1",
            OPENAI_API_KEY="sk-test",
        )
        breaker.reset_models()
        try:
            first, body = draft()
            later = [draft()[0] for _ in range(2)]
            called = len(fake.requests)
        finally:
            breaker.reset_models()
    assert body["model_used"] == "harvey/extractive"
    assert first >= timeout, "the first draft waited for the dead primary"
    assert called == 1, f"the dead primary was called {called} times; its breaker should have stopped it after one"
    assert min(later) - baseline <= 0.3 * timeout, f"after the breaker opened: {later} vs {baseline:.2f} s"
