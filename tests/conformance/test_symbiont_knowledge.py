"""The unmodified upstream ``symbiont`` SDK (symbiont-sdk 0.3.0) drives a live Portside: the README's
"Vector Database & RAG" examples (add, search, RAG context) and ``delete_knowledge_item``.

``Client.add_knowledge_item`` can never send its request: it posts ``item.dict()``, whose required
``metadata.timestamp`` stays a ``datetime`` that ``requests`` cannot serialise (docs/wire/symbiont.md 2.7).
The tests expect that client-side ``TypeError`` and send the very same SDK request model, serialised with
``model_dump(mode="json")``, with ``requests`` to the same route.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from symbiont import (
    AuthenticationError,
    Client,
    ContextQuery,
    ContextResponse,
    KnowledgeItem,
    KnowledgeSourceType,
    NotFoundError,
    VectorMetadata,
    VectorSearchRequest,
    VectorSearchResponse,
)

from tests.conftest import ADMIN_KEY, LiveServer, make_settings

CONFIG_DOC = "System configuration: you configure the system by editing its configuration settings."
AUTH_DOC = "To set up authentication, create an API key and send it in the Authorization header."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(tmp_path_factory.mktemp("symbiont-kb") / "data")).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Client:
    return Client(api_key=ADMIN_KEY, base_url=f"{server.url}/api/v1")


def send(client: Client, item: KnowledgeItem) -> dict[str, Any]:
    """What ``add_knowledge_item`` would send, JSON-serialisable: POST knowledge with the model's fields."""
    r = requests.post(
        f"{client.base_url}/knowledge",
        json=item.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {client.api_key}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def item(item_id: str, content: str, source: str, kind: KnowledgeSourceType, agent: str | None) -> KnowledgeItem:
    meta = VectorMetadata(source=source, source_type=kind, timestamp=datetime.now(), agent_id=agent)
    return KnowledgeItem(id=item_id, content=content, metadata=meta)


@pytest.fixture(scope="module")
def readme_item(client: Client) -> KnowledgeItem:
    # Add knowledge items (README, verbatim)
    metadata = VectorMetadata(
        source="documentation.md",
        source_type=KnowledgeSourceType.DOCUMENT,
        timestamp=datetime.now(),
        agent_id="agent-123",
    )
    knowledge_item = KnowledgeItem(
        id="doc-001",
        content="This is important documentation about the system...",
        metadata=metadata,
    )
    with pytest.raises(TypeError, match="not JSON serializable"):
        client.add_knowledge_item(knowledge_item)
    added = send(client, knowledge_item)
    assert added["id"] == "doc-001" and added["status"] == "added" and added["chunk_count"] == 1
    for extra in (
        item("doc-config", CONFIG_DOC, "configuration.md", KnowledgeSourceType.DOCUMENT, "agent-123"),
        item("doc-auth", AUTH_DOC, "auth.md", KnowledgeSourceType.DOCUMENT, "agent-123"),
        item(
            "code-auth",
            "def authenticate(api_key): return verify(api_key)",
            "auth.py",
            KnowledgeSourceType.CODE,
            "agent-123",
        ),
        item(
            "chat-auth",
            "User asked how to set up authentication.",
            "chat-42",
            KnowledgeSourceType.CONVERSATION,
            "agent-123",
        ),
        item("other-auth", AUTH_DOC, "auth.md", KnowledgeSourceType.DOCUMENT, "agent-456"),
    ):
        send(client, extra)
    return knowledge_item


def test_readme_search(client: Client, readme_item: KnowledgeItem) -> None:
    # Search knowledge base (README, verbatim)
    search_request = VectorSearchRequest(
        query="How do I configure the system?",
        agent_id="agent-123",
        source_types=[KnowledgeSourceType.DOCUMENT],
        limit=5,
        similarity_threshold=0.7,
    )
    search_results = client.search_knowledge(search_request)
    lines = []
    for result in search_results.results:
        lines.append(f"Score: {result.similarity_score}")
        lines.append(f"Content: {result.item.content[:100]}...")

    assert isinstance(search_results, VectorSearchResponse)
    assert search_results.query == "How do I configure the system?"
    assert search_results.total_results == len(search_results.results) == 1  # cosine >= 0.7
    best = search_results.results[0]
    assert best.item.id == "doc-config" and best.item.content == CONFIG_DOC and best.similarity_score >= 0.7
    assert best.item.metadata.source == "configuration.md" and best.item.metadata.agent_id == "agent-123"
    assert best.item.metadata.source_type == KnowledgeSourceType.DOCUMENT and best.item.metadata.chunk_index == 0
    assert isinstance(best.item.metadata.timestamp, datetime)

    # A lower threshold also finds the README's own item, ranked by cosine.
    wide = client.search_knowledge(
        {"query": "How do I configure the system?", "agent_id": "agent-123", "similarity_threshold": 0.3}
    )
    ids = [r.item.id for r in wide.results]
    assert ids[:2] == ["doc-config", "doc-001"]
    scores = [r.similarity_score for r in wide.results]
    assert scores == sorted(scores, reverse=True)
    assert wide.results[1].item.content == readme_item.content


def test_search_scopes(client: Client, readme_item: KnowledgeItem) -> None:
    q = "How do I set up authentication?"
    everyone = client.search_knowledge(VectorSearchRequest(query=q, similarity_threshold=0.2))
    assert {"doc-auth", "other-auth"} <= {r.item.id for r in everyone.results}
    mine = client.search_knowledge(VectorSearchRequest(query=q, agent_id="agent-123", similarity_threshold=0.2))
    assert "other-auth" not in {r.item.id for r in mine.results}
    code = client.search_knowledge(
        VectorSearchRequest(query=q, source_types=[KnowledgeSourceType.CODE], similarity_threshold=0.0)
    )
    assert [r.item.id for r in code.results] == ["code-auth"]
    assert code.results[0].item.metadata.source_type == KnowledgeSourceType.CODE
    assert (
        client.search_knowledge(VectorSearchRequest(query=q, agent_id="nobody", similarity_threshold=0.0)).results == []
    )
    limited = client.search_knowledge(VectorSearchRequest(query=q, limit=2, similarity_threshold=0.0))
    assert limited.total_results == 2


def test_readme_context(client: Client, readme_item: KnowledgeItem) -> None:
    # Get context for RAG operations (README, verbatim)
    context_query = ContextQuery(query="How do I set up authentication?", agent_id="agent-123", max_context_items=3)
    context = client.get_context(context_query)
    summary = f"Retrieved {len(context.context_items)} context items; Sources: {context.sources}"

    assert isinstance(context, ContextResponse) and summary
    assert context.query == "How do I set up authentication?"
    assert 1 <= len(context.context_items) <= 3
    assert len(context.sources) == len(context.relevance_scores) == len(context.context_items)
    assert AUTH_DOC in context.context_items
    assert context.sources[context.context_items.index(AUTH_DOC)] == "auth.md"
    assert context.relevance_scores == sorted(context.relevance_scores, reverse=True)
    assert all(s >= 0.3 for s in context.relevance_scores)

    without_chat = client.get_context(
        ContextQuery(query="How do I set up authentication?", agent_id="agent-123", include_conversation_history=False)
    )
    assert "chat-42" not in without_chat.sources
    with_chat = client.get_context({"query": "How do I set up authentication?", "agent_id": "agent-123"})
    assert "chat-42" in with_chat.sources


def test_delete_knowledge_item(client: Client, readme_item: KnowledgeItem) -> None:
    send(
        client,
        item("doc-temp", "Temporary note about glaciers and fjords.", "tmp.md", KnowledgeSourceType.DOCUMENT, None),
    )
    q = VectorSearchRequest(query="glaciers carving fjords", similarity_threshold=0.3)
    assert [r.item.id for r in client.search_knowledge(q).results] == ["doc-temp"]
    assert client.delete_knowledge_item("doc-temp") == {"id": "doc-temp", "deleted": True}
    assert client.search_knowledge(q).results == []
    with pytest.raises(NotFoundError):
        client.delete_knowledge_item("doc-temp")


def test_add_replaces_and_needs_a_key(client: Client, server: LiveServer, readme_item: KnowledgeItem) -> None:
    again = send(client, readme_item)
    assert again == {**again, "id": "doc-001", "status": "updated"}
    anonymous = Client(base_url=f"{server.url}/api/v1")
    anonymous.api_key = None
    with pytest.raises(AuthenticationError):
        anonymous.search_knowledge(VectorSearchRequest(query="anything"))
