"""The chunk store contract, on Qdrant's local mode (the only Qdrant that runs here)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memory.documents import DocumentRecord, DocumentStatus, document_id
from memory.qdrant import QdrantStore
from memory.sparse import encode_document, encode_query
from memory.store import ChunkRecord, SearchFilter
from switchboard.errors import SwitchboardError


def _unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def _chunk(
    doc: str, tenant: str, index: int, text: str, dense: list[float], **meta: str
) -> ChunkRecord:
    return ChunkRecord(
        document_id=doc,
        tenant=tenant,
        index=index,
        text=text,
        title="Title",
        source="file.md",
        section=None,
        page=None,
        dense=dense,
        sparse=encode_document(text),
        metadata=meta,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[QdrantStore]:
    qdrant = QdrantStore(collection="chunks", url=None, api_key=None, path=tmp_path / "qdrant")
    await qdrant.ensure_schema(3)
    yield qdrant
    await qdrant.close()


async def test_chunks_are_searchable_only_once_published(store: QdrantStore) -> None:
    doc = document_id("t1", "hash-a")
    await store.upsert_chunks([_chunk(doc, "t1", 0, "the funicular car Wren", _unit(1, 0, 0))])
    where = SearchFilter(tenant="t1")
    assert await store.hybrid_search(where, _unit(1, 0, 0), encode_query("Wren"), 5) == []
    assert await store.count_chunks("t1", doc) == 1
    await store.publish("t1", doc)
    hits = await store.hybrid_search(where, _unit(1, 0, 0), encode_query("Wren"), 5)
    assert [h.text for h in hits] == ["the funicular car Wren"]
    assert hits[0].document_id == doc and len(hits[0].dense) == 3


async def test_hybrid_search_fuses_dense_and_sparse(store: QdrantStore) -> None:
    doc = document_id("t1", "hash-b")
    await store.upsert_chunks(
        [
            _chunk(doc, "t1", 0, "hydro turbine output in winter", _unit(1, 0, 0)),
            _chunk(doc, "t1", 1, "observatory dome code KR-2231", _unit(0, 1, 0)),
            _chunk(doc, "t1", 2, "volunteer rota for summer", _unit(0, 0, 1)),
        ]
    )
    await store.publish("t1", doc)
    # Dense points at chunk 0, the sparse query's rare term at chunk 1: both come back.
    hits = await store.hybrid_search(
        SearchFilter(tenant="t1"), _unit(1, 0.1, 0), encode_query("KR-2231 code"), 2
    )
    assert {h.index for h in hits} == {0, 1}


async def test_filters_hold(store: QdrantStore) -> None:
    mine, theirs = document_id("t1", "h1"), document_id("t2", "h1")
    assert mine != theirs
    await store.upsert_chunks([_chunk(mine, "t1", 0, "shared words", _unit(1, 0, 0), team="a")])
    await store.upsert_chunks([_chunk(theirs, "t2", 0, "shared words", _unit(1, 0, 0), team="b")])
    await store.publish("t1", mine)
    await store.publish("t2", theirs)
    query = (_unit(1, 0, 0), encode_query("shared words"), 10)
    assert [h.document_id for h in await store.hybrid_search(SearchFilter("t1"), *query)] == [mine]
    assert await store.hybrid_search(SearchFilter("t1", metadata={"team": "b"}), *query) == []
    assert await store.hybrid_search(SearchFilter("t1", document_ids=[theirs]), *query) == []
    assert len(await store.hybrid_search(SearchFilter("t1", metadata={"team": "a"}), *query)) == 1


async def test_delete_removes_every_chunk_of_the_document_only(store: QdrantStore) -> None:
    a, b = document_id("t1", "a"), document_id("t1", "b")
    await store.upsert_chunks([_chunk(a, "t1", i, f"a{i}", _unit(1, 0, 0)) for i in range(3)])
    await store.upsert_chunks([_chunk(b, "t1", 0, "b0", _unit(1, 0, 0))])
    assert await store.delete_chunks("t1", a) == 3
    assert await store.count_chunks("t1", a) == 0
    assert await store.count_chunks("t1") == 1


async def test_document_records(store: QdrantStore) -> None:
    record = DocumentRecord(
        id=document_id("t1", "h"), tenant="t1", title="T", source="t.md", format="markdown",
        content_hash="h", size_bytes=10, metadata={"team": "a"},
    )  # fmt: skip
    await store.put_document(record)
    got = await store.get_document("t1", record.id)
    assert got == record and got.status is DocumentStatus.PROCESSING
    assert await store.get_document("t2", record.id) is None, "another tenant's id is not found"
    assert await store.get_document("t1", "not-a-uuid") is None
    assert [r.id for r in await store.list_documents("t1")] == [record.id]
    assert await store.list_documents("t2") == []
    await store.delete_document("t1", record.id)
    assert await store.get_document("t1", record.id) is None


async def test_a_collection_of_another_dimension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q"
    first = QdrantStore(collection="c", url=None, api_key=None, path=path)
    await first.ensure_schema(3)
    await first.close()
    second = QdrantStore(collection="c", url=None, api_key=None, path=path)
    with pytest.raises(SwitchboardError, match="3-dimensional vectors but the embedder makes 4"):
        await second.ensure_schema(4)
    await second.close()
