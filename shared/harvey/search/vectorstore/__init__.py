"""Storage of chunk vectors behind one interface, with Qdrant Edge (in-process) and Qdrant server adapters.

Both adapters run the same hybrid query (dense + sparse prefetch fused by RRF, filtered by tenant)
so the product ranks identically on a laptop and in the cluster. Adapters are imported lazily:
qdrant-client alone costs most of a second of cold start.
"""

from __future__ import annotations

from pathlib import Path

from harvey.search.vectorstore.base import (
    FusionParams,
    ScoredRecord,
    StoredPoint,
    StoreUnavailable,
    VectorStore,
)

__all__ = ["FusionParams", "ScoredRecord", "StoredPoint", "StoreUnavailable", "VectorStore", "open_store"]


def open_store(
    collection: str,
    dim: int,
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: Path | None = None,
) -> VectorStore:
    """The server adapter when `url` is set, else Qdrant Edge under `path`/`collection`."""
    if url:
        from harvey.search.vectorstore.server import ServerStore

        return ServerStore(collection, dim, url=url, api_key=api_key)
    from harvey.search.vectorstore.edge import EdgeStore

    return EdgeStore(Path(path or ".harvey/qdrant") / collection, dim)
