"""Knowledge library: local sentence embeddings, chunking and vector indexes for RAG.

Pure Python, no HTTP. The knowledge service stores items and their vectors in its own tables; the
indexes here are rebuildable search accelerators over those vectors.
"""

from portside.server.knowledge.chunking import (
    DEFAULT_OVERLAP,
    DEFAULT_SIZE,
    Chunk,
    SpanFn,
    chunk_markdown,
    chunk_text,
    word_spans,
)
from portside.server.knowledge.embeddings import (
    MINILM_DIM,
    MINILM_MODEL_ID,
    Embedder,
    MiniLMEmbedder,
    l2_normalize,
    mean_pool,
)
from portside.server.knowledge.index import (
    BACKENDS,
    NumpyIndex,
    PgVectorIndex,
    SearchHit,
    SqliteVecIndex,
    VectorIndex,
    open_index,
    pgvector_available,
    sqlite_vec_available,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_OVERLAP",
    "DEFAULT_SIZE",
    "MINILM_DIM",
    "MINILM_MODEL_ID",
    "Chunk",
    "Embedder",
    "MiniLMEmbedder",
    "NumpyIndex",
    "PgVectorIndex",
    "SearchHit",
    "SpanFn",
    "SqliteVecIndex",
    "VectorIndex",
    "chunk_markdown",
    "chunk_text",
    "l2_normalize",
    "mean_pool",
    "open_index",
    "pgvector_available",
    "sqlite_vec_available",
    "word_spans",
]
