"""`make bench`: cold start, warm latency and ingest throughput, side by side in one run.

Writes bench/results.md. Every number is a median over repeated runs on this machine;
ratios are taken against a hello-world function started in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUEST = {
    "doc_type": "peticao_inicial",
    "task": "Ação de indenização por cobrança indevida e inscrição indevida em cadastro de inadimplentes",
    "facts": "O autor foi cobrado por tarifa não contratada e teve o nome negativado.",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None, key: str | None = None, timeout: float = 120) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def serve(target: str, source: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own venv's binary
        [str(BIN / "functions-framework"), "--target", target, "--source", str(source), "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}", started


def wait_ready(url: str, path: str, started: float, deadline: float = 60) -> float:
    while time.perf_counter() - started < deadline:
        try:
            status, _ = http(url + path, timeout=1)
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url}{path} not ready after {deadline}s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def setup(env: dict[str, str]) -> tuple[str, float]:
    """Migrate, create a tenant and ingest the demo corpus; return (api key, chunks/s)."""
    code = (
        "import json,time,sys\n"
        "from harvey import db, tenants\nfrom harvey.ingest import ingest, read_path\n"
        "db.migrate()\nt,k=tenants.create('bench')\ndocs=list(read_path(__import__('pathlib').Path('data/demo/corpus')))\n"
        "s=time.perf_counter();r=ingest(t.id,docs);e=time.perf_counter()-s\n"
        "print(json.dumps({'key':k,'chunks':r.chunks,'seconds':e}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT,  # noqa: S603
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    print(f"  ingested {result['chunks']} chunks in {result['seconds']:.1f} s", file=sys.stderr)
    return result["key"], result["chunks"] / result["seconds"]


def ingest_rate(env: dict[str, str], runs: int) -> list[float]:
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as qdrant:
            code = (
                "import json,time,uuid\nfrom harvey.ingest import read_path\n"
                "from harvey.chunking import chunk_document\nfrom harvey.retrieval import open_index\n"
                "docs=list(read_path(__import__('pathlib').Path('data/demo/corpus')))\n"
                "chunks=[c for d in docs for c in chunk_document(d.document_id,d.text,d.title,d.metadata)]\n"
                "index=open_index();s=time.perf_counter();index.add(str(uuid.uuid4()),chunks)\n"
                "print(json.dumps({'rate':len(chunks)/(time.perf_counter()-s)}))\n"
            )
            out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env, "QDRANT_PATH": qdrant},  # noqa: S603
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
            rates.append(json.loads(out.strip().splitlines()[-1])["rate"])
    return rates


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each cold-start measurement")
    parser.add_argument("--requests", type=int, default=30, help="warm generate requests")
    args = parser.parse_args()

    import pg8000.native

    sys.path.insert(0, str(ROOT / "shared"))
    from harvey.db import connect_params

    name = f"harvey_bench_{uuid.uuid4().hex[:8]}"
    admin = pg8000.native.Connection(**connect_params(BASE_URL))
    admin.run(f"CREATE DATABASE {name}")
    home = Path(tempfile.mkdtemp(prefix="harvey-bench-"))
    env = {
        "DATABASE_URL": BASE_URL.rsplit("/", 1)[0] + "/" + name,
        "QDRANT_PATH": str(home / "qdrant"), "HARVEY_HOME": str(home), "HARVEY_LOG_LEVEL": "WARNING",
        "HARVEY_LLM_MODELS": "harvey/extractive", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }  # fmt: skip
    env.pop("REDIS_URL", None)
    try:
        print("setting up (migrate, tenant, ingest)…", file=sys.stderr)
        key, _ = setup(env)
        rows: list[tuple[str, str]] = []

        print("cold starts…", file=sys.stderr)
        hello, health, first = [], [], []
        for run in range(args.runs):
            process, url, started = serve("hello", ROOT / "bench/hello/main.py", env)
            hello.append(wait_ready(url, "/", started))
            stop(process)
            process, url, started = serve("generate", ROOT / "functions/generate/main.py", env)
            health.append(wait_ready(url, "/healthz", started))
            status, body = http(url + "/", REQUEST, key)
            first.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"first generate failed: {status} {body[:300]!r}")
            stop(process)
            print(f"  run {run + 1}: hello {hello[-1]:.3f}s healthz {health[-1]:.3f}s first {first[-1]:.3f}s",
                  file=sys.stderr)  # fmt: skip
        h = statistics.median(hello)
        rows.append(("hello-world function: process start → first 200", f"{h * 1000:.0f} ms"))
        rows.append(
            (
                "generate: process start → /healthz 200",
                f"{statistics.median(health) * 1000:.0f} ms ({statistics.median(health) / h:.2f}× hello)",
            )
        )
        rows.append(
            (
                "generate: process start → first draft (offline model)",
                f"{statistics.median(first) * 1000:.0f} ms ({statistics.median(first) / h:.1f}× hello)",
            )
        )

        print("warm latency…", file=sys.stderr)
        process, url, started = serve("generate", ROOT / "functions/generate/main.py", env)
        wait_ready(url, "/healthz", started)
        http(url + "/", REQUEST, key)
        total, model = [], []
        for _ in range(args.requests):
            began = time.perf_counter()
            status, body = http(url + "/", REQUEST, key)
            total.append(time.perf_counter() - began)
            model.append(json.loads(body)["timings_ms"]["model"] / 1000)
        stop(process)
        rows.append(
            (
                "warm generate latency p50 / p95 (client-side)",
                f"{statistics.median(total) * 1000:.0f} / {percentile(total, 0.95) * 1000:.0f} ms",
            )
        )
        rows.append(
            (
                "  of which in the model (p50 / p95)",
                f"{statistics.median(model) * 1000:.0f} / {percentile(model, 0.95) * 1000:.0f} ms",
            )
        )

        print("ingest throughput…", file=sys.stderr)
        rates = ingest_rate(env, args.runs)
        rows.append(
            (
                "ingest into the embedded index (demo corpus)",
                f"{statistics.median(rates):.0f} chunks/s (min {min(rates):.0f}, max {max(rates):.0f})",
            )
        )

        extra = []
        for script in ("bench_retrieval.py", "bench_feedback.py", "bench_retention.py"):
            path = ROOT / "bench" / script
            if path.exists():
                print(f"{script}…", file=sys.stderr)
                result = subprocess.run([sys.executable, str(path)], env={**os.environ}, cwd=ROOT,  # noqa: S603
                                        capture_output=True, text=True, check=True)  # fmt: skip
                extra.append(result.stdout.strip())
    finally:
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    lines = [
        "# Benchmarks", "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}. "
        f"Medians of {args.runs} runs (cold start, ingest) and {args.requests} requests (warm latency), "
        "measured side by side in one `make bench` run.", "",
        "| measurement | result |", "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows], "",
        *[block + "\n" for block in extra],
    ]  # fmt: skip
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
