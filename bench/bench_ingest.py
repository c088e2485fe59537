"""Documents in, end to end → a markdown fragment on stdout.

Rows: chunks/s embedded and indexed (the search side of an upload, in this process); documents/s through
the ingest function served by functions-framework, with one and with two worker processes side by side
(the scale-out ratio on this machine's cores), on a mix of text PDFs, DOCX, HTML and Markdown made from
tests/fixtures/intake, and on scanned PDFs (OCR). Each worker process is what one pod is: its own
`functions-framework` with WORKERS=1 and, as Qdrant Edge is in-process, its own index folder (in a
cluster the pods share one Qdrant server). Uploads are held (`Prefer: wait`) and kept two in flight per
process (its HARVEY_INGEST_WORKERS + HARVEY_INGEST_QUEUE_DEPTH), as Knative sends them. A private
PostgreSQL database per run; medians of --runs runs. Offline; the OCR row needs tesseract with its
Portuguese model.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIXTURES = ROOT / "tests" / "fixtures" / "intake"
BASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MEMO = (
    "# Parecer {n}\n\n## Dos fatos\n\n"
    + "O consulente celebrou contrato de prestação de serviços e relata atraso reiterado na entrega. " * 12
    + "\n\n## Do direito\n\n"
    + "A mora do devedor autoriza a resolução do contrato e a cobrança de perdas e danos, nos termos da lei. " * 12
    + "\n"
)


def mixed() -> list[tuple[str, bytes]]:
    """Eight text PDFs, four DOCX, four HTML pages and four Markdown opinions: (content type, bytes)."""
    pdf, docx, html = (FIXTURES / n for n in ("text.pdf", "brief.docx", "page.html"))
    files = [(PDF, pdf.read_bytes())] * 8 + [(DOCX, docx.read_bytes())] * 4 + [("text/html", html.read_bytes())] * 4
    return files + [("text/markdown", MEMO.format(n=n).encode()) for n in range(4)]


def scans() -> list[tuple[str, bytes]]:
    return [(PDF, (FIXTURES / "scanned.pdf").read_bytes())] * 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, key: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def serve(env: dict[str, str], home: Path) -> tuple[subprocess.Popen, str]:
    """One ingest 'pod': its own process, port and index folder."""
    port = free_port()
    home.mkdir(parents=True)
    process = subprocess.Popen(  # noqa: S603 - our own venv's binary
        [
            str(BIN / "functions-framework"),
            "--target",
            "ingest",
            "--source",
            "functions/ingest/main.py",
            "--port",
            str(port),
        ],
        env={**os.environ, **env, "QDRANT_PATH": str(home / "qdrant"), "HARVEY_HOME": str(home)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz?ready=1", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return process, url
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the ingest function did not become ready within 120 s")


def upload_all(
    urls: list[str], key: str, files: list[tuple[str, bytes]], prefix: str, per_process: int = 2
) -> tuple[float, int]:
    """(seconds, documents indexed) for every file uploaded held, `per_process` in flight per process."""

    def one(i: int) -> bool:
        content_type, data = files[i]
        headers = {"Content-Type": content_type, "X-Document-Id": f"{prefix}-{i}", "Prefer": "wait=540"}
        for _ in range(50):  # a 503 (a full pod) is retried as a client would
            status, body = call(f"{urls[i % len(urls)]}/documents", key, data, headers)
            if status != 503:
                return status == 200 and body.get("status") == "indexed"
            time.sleep(0.2)
        return False

    started = time.perf_counter()
    with ThreadPoolExecutor(per_process * len(urls)) as pool:
        done = list(pool.map(one, range(len(files))))
    return time.perf_counter() - started, sum(done)


def through_the_function(
    env: dict[str, str], key: str, files, processes: int, runs: int, home: Path, threads: int = 1
) -> list[float]:
    """Documents/s with `processes` ingest processes of `threads` ingest workers each (and as many queued),
    one run per fresh set of document ids."""
    pod = {
        **env,
        "HARVEY_INGEST_WORKERS": str(threads),
        "HARVEY_INGEST_QUEUE_DEPTH": str(threads),
        "THREADS": str(2 * threads),
    }
    servers = [serve(pod, home / f"{uuid.uuid4().hex[:8]}-{i}") for i in range(processes)]
    urls = [url for _, url in servers]
    in_flight = 2 * threads
    try:
        upload_all(urls, key, files[: in_flight * processes], f"warm-{uuid.uuid4().hex[:6]}", in_flight)
        rates = []
        for _ in range(runs):
            seconds, indexed = upload_all(urls, key, files, f"run-{uuid.uuid4().hex[:8]}", in_flight)
            if indexed != len(files):
                raise RuntimeError(f"only {indexed} of {len(files)} documents were indexed")
            rates.append(len(files) / seconds)
        return rates
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=30)


def embedding_rate(runs: int) -> tuple[float, int]:
    """(chunks/s, chunks) of Index.add — dense embedding, sparse vector and upsert — on the mixed set's chunks."""
    from harvey.intake import parse
    from harvey.search.chunking import chunk_parsed
    from harvey.search.retrieval import open_index

    chunks = [
        chunk
        for i, (content_type, data) in enumerate(mixed())
        for chunk in chunk_parsed(f"doc-{i}", parse(data, content_type), "Bench")
    ]
    index = open_index()
    index.add("00000000-0000-0000-0000-000000000000", chunks[:8])  # load the engine
    times = []
    for run in range(runs):
        started = time.perf_counter()
        index.add(str(uuid.UUID(int=run + 1)), chunks)
        times.append(time.perf_counter() - started)
    return len(chunks) / statistics.median(times), len(chunks)


def first_200(target: str, source: str, path: str, env: dict[str, str], home: Path) -> float:
    """Seconds from process start to the first 200 on `path`: a cold start as Knative sees it."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own venv's binary
        [str(BIN / "functions-framework"), "--target", target, "--source", source, "--port", str(port)],
        env={**os.environ, **env, "QDRANT_PATH": str(home / "qdrant"), "HARVEY_HOME": str(home)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return time.perf_counter() - started
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.01)
        raise RuntimeError(f"{target} did not answer {path} within 60 s")
    finally:
        process.kill()
        process.wait()


def cold_healthz(env: dict[str, str], home: Path, runs: int) -> tuple[float, float]:
    """Median seconds to the first 200: (hello-world on /, ingest on /healthz), alternating run by run."""
    hello, ingest = [], []
    for n in range(runs):
        hello.append(first_200("hello", "bench/hello/main.py", "/", env, home / f"cold-{n}"))
        ingest.append(first_200("ingest", "functions/ingest/main.py", "/healthz", env, home / f"cold-{n}"))
    return statistics.median(hello), statistics.median(ingest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repeated runs per measurement (median reported)")
    parser.add_argument("--no-ocr", action="store_true", help="skip the scanned-PDF rows")
    args = parser.parse_args()

    import pg8000.native

    sys.path.insert(0, str(ROOT / "shared"))
    from harvey.store.db import connect_params

    name = f"harvey_bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = pg8000.native.Connection(**connect_params(BASE_URL))
    admin.run(f"CREATE DATABASE {name}")
    home = Path(tempfile.mkdtemp(prefix="harvey-bench-ingest-"))
    env = {
        "DATABASE_URL": BASE_URL.rsplit("/", 1)[0] + "/" + name,
        "REDIS_URL": "",
        "QDRANT_PATH": str(home / "qdrant"),
        "HARVEY_HOME": str(home),
        "HARVEY_LOG_LEVEL": "WARNING",
        "HARVEY_EVENTS_AUTH": "none",
        "WORKERS": "1",
        "THREADS": "2",
        "HARVEY_INGEST_WORKERS": "1",
        "HARVEY_INGEST_QUEUE_DEPTH": "1",
    }
    os.environ.update(env)
    from harvey.config import get_settings
    from harvey.store import db, tenants

    rows: list[tuple[str, str]] = []
    try:
        get_settings.cache_clear()
        db.migrate()
        _, key = tenants.create(f"bench-{uuid.uuid4().hex[:6]}")
        hello, cold = cold_healthz(env, home, max(args.runs, 5))
        rows.append(
            (
                "ingest: process start → /healthz 200, against a hello-world function (alternating)",
                f"{cold * 1000:.0f} ms vs {hello * 1000:.0f} ms: {cold / hello:.2f}× hello",
            )
        )
        rate, count = embedding_rate(args.runs)
        rows.append(
            (f"chunks embedded and indexed ({count} chunks of the mixed set, in-process)", f"{rate:.1f} chunks/s")
        )
        sets = [("mixed: 8 text PDFs, 4 DOCX, 4 HTML, 4 Markdown", mixed())]
        if not args.no_ocr:
            sets.append(("scanned PDFs, 2 pages each, OCR", scans()))
        for label, files in sets:
            one = statistics.median(through_the_function(env, key, files, 1, args.runs, home))
            two = statistics.median(through_the_function(env, key, files, 2, args.runs, home))
            rows.append(
                (
                    f"documents/s through the function, {label}: 1 / 2 worker processes",
                    f"{one:.2f} / {two:.2f} documents/s: scale-out {two / one:.2f}×",
                )
            )
            if files is sets[0][1]:
                threaded = statistics.median(through_the_function(env, key, files, 1, args.runs, home, threads=2))
                rows.append(
                    (
                        "  the same, 1 process with HARVEY_INGEST_WORKERS=2 (threads, not processes)",
                        f"{threaded:.2f} documents/s: {threaded / one:.2f}× one worker",
                    )
                )
    finally:
        db.reset()
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    print(f"## Ingest end to end ({os.cpu_count()} cores, medians of {args.runs} runs)\n")
    print("| measurement | result |")
    print("|---|---|")
    for measurement, result in rows:
        print(f"| {measurement} | {result} |")


if __name__ == "__main__":
    main()
