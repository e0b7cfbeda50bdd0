"""The MiniLM embedder: real model, real tokenizer, no network."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from portside.server.errors import Unavailable
from portside.server.knowledge import MINILM_DIM, Embedder, MiniLMEmbedder, l2_normalize, mean_pool

# Cosine similarities computed with an independent fp32 NumPy implementation of BERT over the upstream
# all-MiniLM-L6-v2 safetensors (mean pooling, L2): the int8 ONNX pipeline must reproduce them.
REFERENCE_TEXTS = [
    "How do I reset my password?",
    "The harbour master schedules tug boats for container ships.",
    "Photosynthesis converts light into chemical energy in plants.",
    "Kubernetes pods are scheduled onto nodes by the scheduler.",
    "A recipe for sourdough bread needs flour, water, salt and a starter.",
]
REFERENCE_FP32 = np.array(
    [
        [1.0, -0.064, 0.097, 0.003, 0.039],
        [-0.064, 1.0, -0.103, 0.347, -0.027],
        [0.097, -0.103, 1.0, 0.095, 0.119],
        [0.003, 0.347, 0.095, 1.0, -0.017],
        [0.039, -0.027, 0.119, -0.017, 1.0],
    ]
)


def test_shapes_dtype_and_unit_norm(embedder: MiniLMEmbedder) -> None:
    out = embedder.embed(["hello world", "a second, somewhat longer sentence about ships"])
    assert out.shape == (2, MINILM_DIM)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == "all-MiniLM-L6-v2-onnx-int8"


def test_matches_fp32_reference_similarities(embedder: MiniLMEmbedder) -> None:
    vecs = embedder.embed(REFERENCE_TEXTS)
    np.testing.assert_allclose(vecs @ vecs.T, REFERENCE_FP32, atol=0.01)


def test_semantics(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]
    )
    assert float(a @ b) > 0.6
    assert float(a @ c) < 0.2


def test_empty_and_order_and_batching(embedder: MiniLMEmbedder) -> None:
    assert embedder.embed([]).shape == (0, MINILM_DIM)
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(23)] + [""]
    small = MiniLMEmbedder(batch_size=4)
    small.load()
    together = embedder.embed(texts)
    batched = small.embed(texts)
    alone = np.stack([embedder.embed_one(t) for t in texts])
    # Length-sorted batches must not scramble the order, and batch composition must not matter.
    assert np.all(np.sum(together * alone, axis=1) > 0.999)
    assert np.all(np.sum(batched * alone, axis=1) > 0.999)


def test_long_text_is_truncated(embedder: MiniLMEmbedder) -> None:
    long = "ships sail across the harbour at dawn " * 200
    assert embedder.count_tokens(long) > 256
    vec = embedder.embed([long])
    assert vec.shape == (1, MINILM_DIM) and np.isfinite(vec).all()


def test_token_spans_are_offsets(embedder: MiniLMEmbedder) -> None:
    text = "Supercalifragilistic harbour logistics!"
    spans = embedder.token_spans(text)
    assert spans[0][0] == 0 and len(spans) > 4  # sub-word pieces
    assert spans[-1][1] == len(text)
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert embedder.count_tokens(text) == len(spans) + 2


def test_lazy_and_thread_safe_load() -> None:
    emb = MiniLMEmbedder()
    assert not emb.loaded  # constructing loads nothing
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(emb.embed(["concurrent embedding of the same sentence"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and emb.loaded
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


def test_missing_model_is_unavailable(tmp_path: Path) -> None:
    emb = MiniLMEmbedder(model_path=tmp_path / "nope.onnx")
    with pytest.raises(Unavailable) as info:
        emb.embed(["x"])
    assert info.value.code == "embedding_model_unavailable"


def test_rejects_a_bare_string(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("not a list")


def test_mean_pool_ignores_padding() -> None:
    hidden = np.array([[[1.0, 3.0], [3.0, 5.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2.0, 4.0]])
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0]], dtype=np.float32)), [[0.6, 0.8]])
    np.testing.assert_allclose(l2_normalize(np.zeros((1, 2), dtype=np.float32)), [[0.0, 0.0]])
