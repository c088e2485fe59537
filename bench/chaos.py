"""`make chaos`: fault injection on loopback → bench/faults.md.

Starts a private PostgreSQL (pgserver, a tmp dir, a Unix socket), a private Redis on a free port,
a fake OpenAI-compatible model and the functions as real servers, then breaks things under load:
PostgreSQL fast-stopped and crashed, Redis killed and hung, a primary model that never answers,
an async flood, PostgreSQL hung. Never touches the machine's shared PostgreSQL or Redis; everything
it started is stopped on exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCENARIOS = ("feedback", "redis", "model", "async", "hang")
CORPUS_IDS = {"CDC:art6", "CDC:art14", "CDC:art18", "CDC:art26", "CDC:art42", "CC:art186", "CC:art927"}
DRAFT = {"doc_type": "parecer", "task": "Prazo para reclamar de vício de produto durável"}
MODEL_TIMEOUT_S = 2.0
_cleanups: list = []


def _cleanup() -> None:
    while _cleanups:
        try:
            _cleanups.pop()()
        except Exception as exc:  # noqa: BLE001 - keep cleaning up the rest
            print(f"cleanup: {exc}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    """(status, headers) of one request; status 0 when the connection failed."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URLs built here
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, {"body": response.read(), **dict(response.headers)}
    except urllib.error.HTTPError as exc:
        return exc.code, {"body": exc.read(), **dict(exc.headers)}
    except (OSError, urllib.error.URLError):
        return 0, {}


@dataclass
class Stack:
    """The private services and the env the functions and CLI run with."""

    home: Path
    env: dict[str, str]
    pg: object = None
    redis: subprocess.Popen | None = None
    redis_port: int = 0
    servers: dict[str, tuple[subprocess.Popen, str]] = field(default_factory=dict)
    tenant_id: str = ""
    key: str = ""

    def pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pg.pgdata, user=self.pg.system_user, timeout=60)

    def pg_start(self) -> None:
        socket_dir = self.pg.get_postmaster_info().socket_dir
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pg.log), "start")

    def pg_pids(self) -> list[int]:
        import psutil

        pid = int((Path(self.pg.pgdata) / "postmaster.pid").read_text().split()[0])
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(  # noqa: S603 - a private Redis on a free loopback port
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _can_connect(self.redis_port), 10, "redis")

    def stop_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGCONT)
            self.redis.kill()
            self.redis.wait(10)

    def serve(self, kind: str, **extra: str) -> str:
        """Start one function as a real server (gunicorn, THREADS=8); its base URL."""
        self.stop(kind)
        port = free_port()
        log = open(self.home / f"{kind}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(  # noqa: S603 - our own venv's binary
            [
                str(BIN / "functions-framework"),
                "--target",
                kind,
                "--source",
                f"functions/{kind}/main.py",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**self.env, "THREADS": "8", **extra},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        self.servers[kind] = (process, url)
        _wait(lambda: call(f"{url}/healthz", timeout=2)[0] == 200, 60, kind)
        if kind == "generate":  # cold start is `make bench`'s business: one draft warms the instance
            call(f"{url}/", DRAFT, {"Authorization": f"Bearer {self.key}"}, timeout=120)
        return url

    def stop(self, kind: str) -> None:
        process, _ = self.servers.pop(kind, (None, ""))
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def harvey(self, *args: str) -> str:
        return subprocess.run(  # noqa: S603 - our own venv's binary
            [str(BIN / "harvey"), *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        ).stdout


def _can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _wait(ready, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {seconds:.0f} s")


def start_stack() -> Stack:
    import pgserver

    home = Path(tempfile.mkdtemp(prefix="harvey-chaos-"))
    home.chmod(0o755)  # as root, pgserver runs PostgreSQL as the `pgserver` user, who must reach it
    _cleanups.append(lambda: shutil.rmtree(home, ignore_errors=True))
    pg = pgserver.get_server(str(home / "pg"), cleanup_mode=None)
    stack = Stack(home=home, env={}, pg=pg, redis_port=free_port())
    _cleanups.append(lambda: stack.pg_ctl("-w", "-m", "immediate", "stop"))
    stack.start_redis()
    _cleanups.append(stack.stop_redis)
    stack.env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HARVEY_", "QDRANT_", "K_SINK"))},
        "DATABASE_URL": pg.get_uri(),
        "REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}/0",
        "HARVEY_HOME": str(home),
        "QDRANT_PATH": str(home / "qdrant"),
        "HARVEY_EVENTS_AUTH": "none",
        "HARVEY_LLM_MODELS": "harvey/extractive",
        "HARVEY_LOG_LEVEL": "WARNING",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    for kind in ("generate", "feedback", "maintenance"):
        _cleanups.append(lambda kind=kind: stack.stop(kind))
    os.environ.update(stack.env)  # this process reads the private database to count rows
    stack.harvey("db", "migrate")
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    stack.key = json.loads(stack.harvey("tenant", "create", name, "--json"))["api_key"]
    corpus = home / "corpus.jsonl"
    lines = (ROOT / "data/demo/corpus/legislacao.jsonl").read_text().splitlines()
    corpus.write_text("\n".join(line for line in lines if json.loads(line)["id"] in CORPUS_IDS) + "\n")
    stack.harvey("ingest", str(corpus), "--tenant", name)
    from harvey.store import tenants

    stack.tenant_id = tenants.by_name(name).id
    return stack


@dataclass
class Row:
    scenario: str
    requests: int = 0
    acknowledged: int = 0
    lost: int | str = "–"
    duplicated: int | str = "–"
    other_5xx: int = 0
    retryable: int = 0
    recovery_s: str = "–"
    notes: str = ""
    statuses: Counter = field(default_factory=Counter)

    def count(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.acknowledged += 1
        elif status in (503, 429):
            self.retryable += 1
        elif status >= 500:
            self.other_5xx += 1


def _median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms" if values else "–"


def scenario_feedback(stack: Stack, threads: int = 6) -> Row:
    """Feedback load with Idempotency-Key and client retries across a fast stop + start, then a crash."""
    url = stack.serve("feedback")
    generate = stack.serve("generate")
    status, answer = call(f"{generate}/", DRAFT, {"Authorization": f"Bearer {stack.key}"}, timeout=120)
    assert status == 200, f"setup draft failed: {status} {answer.get('body', b'')[:200]!r}"
    run_id = json.loads(answer["body"])["run_id"]
    stack.stop("generate")
    row, lock, stop = (
        Row("feedback: PostgreSQL fast stop + start, then crash (restart -m immediate)"),
        threading.Lock(),
        threading.Event(),
    )
    acked: dict[str, str] = {}
    successes: list[float] = []

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"chaos-{n}-{i}"
            body = {"run_id": run_id, "rating": 1, "comment": key}
            for _ in range(200):  # a real client retries 503/429 and lost connections, same key
                status, answer = call(url, body, {"Authorization": f"Bearer {stack.key}", "Idempotency-Key": key}, 10)
                with lock:
                    row.count(status)
                    if 200 <= status < 300:
                        acked[key] = json.loads(answer["body"])["id"]
                        successes.append(time.monotonic())
                if status not in (0, 429, 503):
                    break
                time.sleep(min(float(answer.get("Retry-After", 0.2)), 0.3))
            i += 1

    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for w in workers:
        w.start()
    time.sleep(2)
    stack.pg_ctl("-w", "-m", "fast", "stop")
    time.sleep(2)
    stack.pg_start()
    back_1 = time.monotonic()
    time.sleep(3)
    stack.pg_ctl("-w", "-m", "immediate", "restart")
    back_2 = time.monotonic()
    time.sleep(3)
    stop.set()
    for w in workers:
        w.join(60)
    from harvey.store import db

    db.reset()
    rows = db.query(
        "SELECT comment, count(*) AS n FROM feedback_events WHERE tenant_id = CAST(:t AS uuid) GROUP BY comment",
        t=stack.tenant_id,
    )
    stored = {r["comment"]: r["n"] for r in rows}
    row.lost = sum(1 for key in acked if key not in stored)
    row.duplicated = sum(1 for n in stored.values() if n > 1)
    recovery = [min((s for s in successes if s >= back), default=float("nan")) - back for back in (back_1, back_2)]
    row.recovery_s = " / ".join(f"{r:.2f}" for r in recovery)
    row.notes = (
        f"{threads} clients, {len(acked)} keys acknowledged, {len(stored)} stored; statuses "
        f"{dict(sorted(row.statuses.items()))}; recovery s = first acknowledgement after the fast stop + start / "
        "after the crash"
    )
    stack.stop("feedback")
    return row


def _generate_load(url: str, key: str, seconds: float, threads: int, row: Row) -> list[float]:
    latencies: list[float] = []
    lock, deadline = threading.Lock(), time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            status, _ = call(f"{url}/", DRAFT, {"Authorization": f"Bearer {key}"}, timeout=60)
            with lock:
                row.count(status)
                latencies.append(time.monotonic() - started)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    return latencies


def scenario_redis(stack: Stack) -> Row:
    """Generate load while Redis is killed, then hung (SIGSTOP): clients must not notice."""
    url = stack.serve("generate")
    row = Row("redis: killed, then hung (SIGSTOP) under generate load")
    before = _generate_load(url, stack.key, 3, 3, row)
    stack.stop_redis()
    killed = _generate_load(url, stack.key, 3, 3, row)
    stack.start_redis()
    time.sleep(1)
    assert stack.redis is not None
    stack.redis.send_signal(signal.SIGSTOP)
    hung = _generate_load(url, stack.key, 3, 3, row)
    stack.redis.send_signal(signal.SIGCONT)
    after = _generate_load(url, stack.key, 3, 3, row)
    stack.stop("generate")
    row.lost = row.duplicated = 0
    row.notes = (
        f"median latency: before {_median_ms(before)}, killed {_median_ms(killed)}, hung {_median_ms(hung)}, "
        f"after {_median_ms(after)}; statuses {dict(sorted(row.statuses.items()))}"
    )
    return row


def scenario_model(stack: Stack) -> Row:
    """A primary model that never answers (fake, on loopback): the first drafts pay the timeout,
    later ones must not once the breaker is open."""
    sys.path.insert(0, str(ROOT))
    from tests.support.fake_openai import FakeOpenAI

    row = Row(f"model: primary hangs (timeout {MODEL_TIMEOUT_S:.0f} s), extractive fallback")
    url = stack.serve("generate")
    baseline = []
    for _ in range(3):
        started = time.monotonic()
        row.count(call(f"{url}/", DRAFT, {"Authorization": f"Bearer {stack.key}"}, timeout=120)[0])
        baseline.append(time.monotonic() - started)
    latencies = []
    with FakeOpenAI(slow_seconds=60) as fake:
        url = stack.serve(
            "generate",
            HARVEY_LLM_MODELS="openai/slow-dead,harvey/extractive",
            HARVEY_LLM_API_BASE=fake.url,
            HARVEY_LLM_TIMEOUT_S=str(MODEL_TIMEOUT_S),
            OPENAI_API_KEY="sk-chaos",
        )
        for _ in range(7):
            started = time.monotonic()
            row.count(call(f"{url}/", DRAFT, {"Authorization": f"Bearer {stack.key}"}, timeout=120)[0])
            latencies.append(time.monotonic() - started)
        stack.stop("generate")
    base = statistics.median(baseline)
    first, later = statistics.median(latencies[:2]), statistics.median(latencies[-4:])
    row.lost = row.duplicated = 0
    row.notes = (
        f"no primary: {base * 1000:.0f} ms; first 2 warm drafts (the warm-up draft was the 1st failure): "
        f"{first:.2f} s = {(first - base) / MODEL_TIMEOUT_S:+.2f}× timeout over no primary; last 4: {later:.2f} s = "
        f"{(later - base) / MODEL_TIMEOUT_S:+.2f}× (target ≤ 0.30×); all: {', '.join(f'{v:.1f}' for v in latencies)} s"
    )
    return row


def scenario_async(stack: Stack, n: int = 160) -> Row:
    """A flood of `Prefer: respond-async`: bounded acceptance, and no accepted run stays queued."""
    url = stack.serve("generate")
    row = Row(f"async: {n} × Prefer: respond-async")
    runs: list[str] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {stack.key}", "Prefer": "respond-async"}

    def client(count: int) -> None:
        for _ in range(count):
            status, answer = call(f"{url}/", DRAFT, headers, timeout=30)
            with lock:
                row.count(status)
                if status == 202:
                    runs.append(json.loads(answer["body"])["run_id"])

    workers = [threading.Thread(target=client, args=(n // 16,), daemon=True) for _ in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    started, final = time.monotonic(), Counter()
    pending = list(runs)
    while pending and time.monotonic() - started < 90:
        still = []
        for run_id in pending:
            status, answer = call(f"{url}/runs/{run_id}", headers={"Authorization": f"Bearer {stack.key}"})
            state = json.loads(answer["body"])["status"] if status == 200 else f"http {status}"
            (still.append(run_id) if state in ("queued", "running") else final.update([state]))
        pending = still
        time.sleep(0.5)
    stack.stop("generate")
    row.lost = len(pending)
    row.duplicated = 0
    row.recovery_s = f"{time.monotonic() - started:.1f}"
    row.notes = (
        f"202: {row.statuses[202]}, refused: {dict((s, c) for s, c in row.statuses.items() if s != 202)}; "
        f"final states {dict(final)}; lost = accepted runs still queued/running after 90 s; recovery = time to drain"
    )
    return row


def scenario_hang(stack: Stack) -> Row:
    """PostgreSQL hung (postmaster and backends SIGSTOPped): how long until a 503, and /healthz still answers."""
    url = stack.serve("feedback")
    row = Row("hang: PostgreSQL SIGSTOPped (default HARVEY_DB_TIMEOUT_S)")
    pids = stack.pg_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        times, health = [], []
        for _ in range(2):
            started = time.monotonic()
            status, _ = call(
                f"{url}/analytics?since=2026-01-01", headers={"Authorization": f"Bearer {stack.key}"}, timeout=60
            )
            row.count(status)
            times.append(time.monotonic() - started)
            started = time.monotonic()
            health.append((call(f"{url}/healthz", timeout=5)[0], time.monotonic() - started))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    started = time.monotonic()
    while (
        call(f"{url}/analytics?since=2026-01-01", headers={"Authorization": f"Bearer {stack.key}"}, timeout=10)[0]
        != 200
    ):
        if time.monotonic() - started > 30:
            break
        time.sleep(0.1)
    row.recovery_s = f"{time.monotonic() - started:.2f}"
    stack.stop("feedback")
    row.lost = row.duplicated = 0
    row.notes = (
        f"time to answer while hung: {', '.join(f'{t:.1f}' for t in times)} s, statuses "
        f"{dict(sorted(row.statuses.items()))}; /healthz: {', '.join(f'{s} in {t * 1000:.0f} ms' for s, t in health)}"
    )
    return row


def write(rows: list[Row], out: Path, seconds: float) -> None:
    lines = [
        "# Fault injection (`make chaos`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on loopback, {seconds:.0f} s: private PostgreSQL (pgserver) and Redis,",
        "functions as real servers (functions-framework, gunicorn, THREADS=8), a fake model that never answers.",
        "Done when lost = 0, duplicated = 0, 5xx other than 503 = 0, and a dead primary costs ≤ 0.3× its timeout",
        "once the breaker is open. Status 0 = the client timed out or the connection failed.",
        "",
        "| scenario | requests | acknowledged | lost | duplicated | 5xx (non-503) | 503/429 | recovery s | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.requests} | {r.acknowledged} | {r.lost} | {r.duplicated} | {r.other_5xx} | "
            f"{r.retryable} | {r.recovery_s} | {r.notes} |"
        )
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "faults.md")
    args = parser.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    stack = start_stack()
    rows = []
    runners = {
        "feedback": scenario_feedback,
        "redis": scenario_redis,
        "model": scenario_model,
        "async": scenario_async,
        "hang": scenario_hang,
    }
    for name in chosen:
        print(f"chaos: {name} …", flush=True)
        try:
            rows.append(runners[name](stack))
        except Exception as exc:  # noqa: BLE001 - a broken scenario is a result too
            rows.append(Row(name, notes=f"scenario failed: {type(exc).__name__}: {str(exc)[:200]}"))
        print(f"  {rows[-1]}", flush=True)
    write(rows, args.out, time.monotonic() - started)
    print(f"wrote {args.out}")
    bad = [r for r in rows if r.other_5xx or r.lost not in (0, "–") or r.duplicated not in (0, "–")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
