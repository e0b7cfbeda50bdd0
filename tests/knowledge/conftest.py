"""Fixtures: one real MiniLM embedder per test session (loading it takes about half a second)."""

from __future__ import annotations

import pytest

from portside.server.knowledge import MiniLMEmbedder


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    emb = MiniLMEmbedder()
    emb.load()
    return emb
