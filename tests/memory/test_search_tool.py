from memory.ingest import Ingestor, VectorStage
from memory.retrieval import Retriever
from tests.memory.conftest import Parts
from tools import SearchDocumentsTool


async def test_the_tool_searches_one_tenants_documents(parts: Parts) -> None:
    settings, embedder, store = parts.settings, parts.embedder, parts.store
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
