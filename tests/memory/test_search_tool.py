from pathlib import Path

from memory.ingest import Ingestor, VectorStage
from memory.retrieval import Retriever
from memory.store import QdrantStore
from switchboard.embeddings import BackendEmbedder
from switchboard.llm import LLMPool
from tests.backends import ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tools import SearchDocumentsTool


async def test_the_tool_searches_one_tenants_documents(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    settings = make_settings(backend_entry("primary", backend))
    llm = LLMPool(settings.llm, settings.llm.backends)
    embedder = BackendEmbedder(llm, batch_size=8)
    store = QdrantStore(collection="c", url=None, api_key=None, path=tmp_path / "q")
    await store.ensure_schema(await embedder.probe())
    ingestor = Ingestor(store, settings.retrieval, [VectorStage(store, embedder, 8)])
    for tenant in ("alpha", "beta"):
        text = f"The {tenant} funicular car Wren was rebuilt in 2019."
        await ingestor.run(await ingestor.prepare_text(tenant, text, title=f"{tenant} cars"))
    retriever = Retriever(store, embedder, settings.retrieval)
    tool = SearchDocumentsTool(retriever, tenant="alpha")
    assert tool.schema()["function"]["name"] == "search_documents"
    found = await tool("funicular car Wren", k=50)
    assert [f["title"] for f in found] == ["alpha cars"]
    assert {"document_id", "chunk_id", "score", "text"} <= set(found[0])
    await store.close()
    await llm.aclose()
