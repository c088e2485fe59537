"""Feedback ingestion over real HTTP: the feedback function vs a minimal functions-framework function that
does one INSERT per request (bench/insert), with the same client, in the same run.

Every server is functions-framework's gunicorn on loopback with the THREADS of knative/base/feedback.yaml
(`--threads` measures another setting, for both the function and its anchor). The
feedback function has K_SINK pointed at a loopback sink that answers 202, as a SinkBinding would (a process of
its own, as a Broker ingress is: its work does not share the client's interpreter lock), and writes each
recorded event to it without waiting for the reply (read before the thread's next event).

Each run measures every row right after a measurement of its anchor, sequential (one keep-alive
connection) and concurrent (CLIENTS connections); the dedupe row re-sends CloudEvents that were already
delivered. Medians of RUNS runs (a row's "vs anchor" is the median of its ratios to the anchor measured just
before it), printed as a markdown table fragment: many short runs, because this machine's speed drifts
by ±20 % over seconds. Works in a private database on DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped after, with synchronous_commit off: every INSERT then
costs what its statement costs, not what this disk's fsync costs that second (1–8 ms here, which drowned
the functions' own difference). Production keeps it on: that adds the same wait to both.

`--baseline DIR` also serves the feedback function from another checkout (e.g. a clone of the previous commit),
with that checkout's library, and measures its rows right after the same rows of this tree: before and after
in one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_FEEDBACK_RUNS", "11"))
EVENTS = int(os.environ.get("BENCH_FEEDBACK_EVENTS", "300"))
CLIENTS = int(os.environ.get("BENCH_FEEDBACK_CLIENTS", "8"))
THREADS = int(os.environ.get("BENCH_FEEDBACK_THREADS", "0"))  # 0: THREADS of knative/base/feedback.yaml
BASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DOCUMENT = "# Petição inicial\n\n" + "O autor requer a repetição do indébito em dobro [1]. " * 40


def body(run_id: str, i: int) -> dict:
    return {
        "run_id": run_id,
        "rating": (i % 3) - 1,
        "comment": "faltou fundamentação",
        "error_spans": [{"start": 20, "end": 60, "label": "fundamentacao"}],
        "missing_sources": [{"raw": "CDC art. 42", "class": "legislacao", "relevance_score": 0.7}],
        "tags": ["bench"],
    }


class Client:
    """One keep-alive HTTP/1.1 connection: the same client for every row."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(self, data: bytes, headers: dict[str, str]) -> int:
        self.connection.request("POST", "/", body=data, headers=headers)
        response = self.connection.getresponse()
        response.read()
        return response.status


def serve_sink() -> None:
    """The sink process: prints its port, then answers every POST with 202 until terminated. An asyncio
    protocol rather than http.server or asyncio's streams, whose per-request work cost more CPU than the
    function's own send, on the same two cores: a Broker ingress is not written in Python, runs on other
    machines, and its cost is not the function's."""
    import asyncio

    reply = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport, self.received = transport, b""

        def data_received(self, data: bytes) -> None:
            self.received += data
            while (end := self.received.find(b"\r\n\r\n")) >= 0:
                length = 0
                for line in self.received[:end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(self.received) < end + 4 + length:
                    return
                self.received = self.received[end + 4 + length :]
                self.transport.write(reply)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


def sink() -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(  # noqa: S603 - this script, run by our own interpreter
        [sys.executable, __file__, "--serve-sink"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def start(target: str, source: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = Path(sys.executable).parent / "functions-framework"
    process = subprocess.Popen(  # noqa: S603 - our own venv's binary
        [str(binary), "--target", target, "--source", str(source), "--port", str(port)],
        env={**os.environ, **env},
        cwd=source.parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{target} did not start")


def knative_threads() -> int:
    """THREADS of the feedback Service as deployed: every server here runs with it."""
    import yaml

    for document in yaml.safe_load_all((ROOT / "knative/base/feedback.yaml").read_text(encoding="utf-8")):
        if document and document.get("kind") == "Service":
            (container,) = document["spec"]["template"]["spec"]["containers"]
            return int(next(v["value"] for v in container["env"] if v["name"] == "THREADS"))
    raise SystemExit("knative/base/feedback.yaml has no Service with THREADS")


def rate(url: str, make: Callable[[int], tuple[dict[str, str], bytes]], expected: int, clients: int) -> float:
    """Events/s for EVENTS requests spread over `clients` connections. The requests are made before the clock
    starts: building a CloudEvent is the sender's cost, not the function's."""
    requests = [make(i) for i in range(EVENTS)]
    connections = [Client(url) for _ in range(clients)]
    failures: list[int] = []

    def work(client: Client, offset: int) -> None:
        for i in range(offset, EVENTS, clients):
            headers, data = requests[i]
            status = client.post(data, headers)
            if status != expected:
                failures.append(status)

    threads = [threading.Thread(target=work, args=(c, n)) for n, c in enumerate(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} unexpected answers, e.g. {failures[0]}")
    return EVENTS / elapsed


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs", type=int, default=RUNS, help="runs; each row reports the median (BENCH_FEEDBACK_RUNS)"
    )
    parser.add_argument("--events", type=int, default=EVENTS, help="requests per row and run (BENCH_FEEDBACK_EVENTS)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients (BENCH_FEEDBACK_CLIENTS)")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose feedback function is measured beside this tree's"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help="THREADS of every server (BENCH_FEEDBACK_THREADS; default: knative/base/feedback.yaml's)",
    )
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    import pg8000.native

    global RUNS, EVENTS, CLIENTS, THREADS
    args = arguments()
    if args.serve_sink:
        serve_sink()
        return
    RUNS, EVENTS, CLIENTS, THREADS = args.runs, args.events, args.clients, args.threads
    baseline = args.baseline.resolve() if args.baseline else None
    if baseline is not None and not (baseline / "functions" / "feedback" / "main.py").is_file():
        raise SystemExit(f"--baseline {baseline}: no functions/feedback/main.py there")

    sys.path.insert(0, str(ROOT / "shared"))
    name = f"harvey_bench_feedback_{uuid.uuid4().hex[:8]}"
    database_url = f"{BASE_URL.rsplit('/', 1)[0]}/{name}"
    os.environ.update({"DATABASE_URL": database_url, "HARVEY_LOG_LEVEL": "WARNING", "REDIS_URL": ""})
    from harvey.store.db import connect_params

    admin = pg8000.native.Connection(**connect_params(BASE_URL))
    admin.run(f"CREATE DATABASE {name}")
    admin.run(f"ALTER DATABASE {name} SET synchronous_commit = off")
    processes: list[subprocess.Popen] = []
    try:
        print(run(processes, baseline))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        from harvey.store import db

        db.reset()
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def run(processes: list[subprocess.Popen], baseline: Path | None) -> str:
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent
    from harvey.drafting import runs
    from harvey.schemas import GenerateRequest
    from harvey.store import db, tenants

    db.migrate()
    tenant, key = tenants.create("bench")
    run_id = str(uuid.uuid4())
    runs.create(
        tenant, runs.Job(GenerateRequest(doc_type="peticao_inicial", task="bench")), run_id=run_id, origin="sync"
    )
    db.query(
        "UPDATE runs SET status = 'succeeded', document_chars = :n WHERE run_id = CAST(:r AS uuid)",
        n=len(DOCUMENT),
        r=run_id,
    )
    sink_process, sink_port = sink()
    processes.append(sink_process)
    common = {
        "THREADS": str(THREADS or knative_threads()),
        "HARVEY_EVENTS_AUTH": "none",
        "BENCH_TENANT_ID": tenant.id,
        "K_SINK": f"http://127.0.0.1:{sink_port}/",
    }
    feedback = Path("functions/feedback/main.py")
    launches = [
        ("insert", "insert", ROOT / "bench/insert/main.py", {}),
        ("feedback", "feedback", ROOT / feedback, {}),
    ]
    if baseline is not None:
        launches.append(("baseline", "feedback", baseline / feedback, {"PYTHONPATH": str(baseline / "shared")}))
    servers = {}
    for label, target, source, extra in launches:
        process, url = start(target, source, {**common, **extra})
        processes.append(process)
        servers[label] = url

    payloads = [json.dumps(body(run_id, i)).encode() for i in range(EVENTS)]
    json_headers = {"Content-Type": "application/json"}
    auth = {**json_headers, "Authorization": f"Bearer {key}"}

    def cloudevent(event_id: str, i: int) -> tuple[dict[str, str], bytes]:
        attributes = {"type": "com.harvey.feedback.submitted", "source": "/bench", "id": event_id}
        event = CloudEvent(attributes, {"tenant_id": tenant.id, **body(run_id, i)})
        headers, data = to_binary(event)
        return dict(headers), data

    delivered = [cloudevent(f"dup-{i}", i) for i in range(EVENTS)]

    def anchor(i: int) -> tuple[dict[str, str], bytes]:
        return json_headers, payloads[i]

    def feedback_json(i: int) -> tuple[dict[str, str], bytes]:
        return auth, payloads[i]

    def fresh_cloudevent(i: int) -> tuple[dict[str, str], bytes]:
        return cloudevent(str(uuid.uuid4()), i)

    def redelivered(i: int) -> tuple[dict[str, str], bytes]:
        return delivered[i]

    feedback_rows: list[tuple[str, str, Callable[[int], tuple[dict[str, str], bytes]], int]] = [
        ("feedback function, JSON + Bearer key, recorded event to K_SINK", "feedback", feedback_json, 201),
        ("feedback function, CloudEvent (binary), new ids", "feedback", fresh_cloudevent, 201),
        ("feedback function, CloudEvent (binary), redelivered ids (deduped)", "feedback", redelivered, 200),
    ]
    rows = [("minimal functions-framework function, one INSERT (anchor)", "insert", anchor, 201)]
    for row in feedback_rows:
        rows.append(row)
        if baseline is not None:
            label, server, make, expected = row
            rows.append((f"{label} — baseline {baseline.name}", "baseline", make, expected))
    first_delivery = Client(servers["feedback"])
    for headers, data in delivered:  # so that the dedupe row sends real duplicates
        first_delivery.post(data, headers)
    for _label, server, make, expected in rows:  # warm-up: imports, connections, plans
        rate(servers[server], make, expected, 2)

    # Each row is measured right after its own anchor measurement; "vs anchor" is the median of those pairs'
    # ratios, so drift in the machine's load over the run does not favour the rows measured early.
    samples: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    anchor_label, anchor_server, anchor_make, anchor_expected = rows[0]
    for _ in range(RUNS):
        for clients in (1, CLIENTS):
            for label, server, make, expected in rows:
                reference = rate(servers[anchor_server], anchor_make, anchor_expected, clients)
                found = reference if label == anchor_label else rate(servers[server], make, expected, clients)
                samples.setdefault((label, clients), []).append(found)
                ratios.setdefault((label, clients), []).append(found / reference)
    lines = [
        f"| feedback ingestion over HTTP ({EVENTS} events × {RUNS} runs, median) | sequential events/s | vs anchor "
        f"| {CLIENTS} clients events/s | vs anchor |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, *_ in rows:
        cells = [
            f"{statistics.median(samples[(label, n)]):,.0f} | {statistics.median(ratios[(label, n)]):.2f}×"
            for n in (1, CLIENTS)
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
