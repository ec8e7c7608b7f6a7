"""What a chunk store holds and answers: chunks, document records, search filters and hits. The
store itself is `memory.qdrant.QdrantStore`.

Chunks carry a dense vector (`dense`) and a BM25-style sparse vector (`bm25`, IDF applied by
Qdrant) as named vectors. A document's chunks are written unsearchable and published in one step
once all of them are in, so a failed ingestion never leaves half a document searchable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from memory.documents import DocumentRecord, MetadataValue, chunk_id
from memory.sparse import SparseVector
from switchboard.errors import SwitchboardError

DENSE = "dense"
SPARSE = "bm25"


class StoreUnavailable(SwitchboardError):
    status = 503
    type = "store_error"
    code = "store_unavailable"


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    document_id: str
    tenant: str
    index: int
    text: str
    title: str
    source: str
    section: str | None
    page: int | None
    dense: list[float]
    sparse: SparseVector
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return chunk_id(self.document_id, self.index)


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: str
    document_id: str
    index: int
    text: str
    title: str
    source: str
    section: str | None
    page: int | None
    score: float
    dense: list[float]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Which chunks a search may return: always one tenant; optionally some documents and
    exact metadata values."""

    tenant: str
    document_ids: Sequence[str] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


class ChunkStore(Protocol):
    """What retrieval and ingestion need of a vector store."""

    async def ensure_schema(self, dimension: int) -> None: ...
    async def upsert_chunks(self, chunks: Sequence[ChunkRecord]) -> None: ...
    async def publish(self, tenant: str, document_id: str) -> None: ...
    async def delete_chunks(self, tenant: str, document_id: str) -> int: ...
    async def count_chunks(self, tenant: str, document_id: str | None = None) -> int: ...
    async def hybrid_search(
        self, where: SearchFilter, dense: list[float], sparse: SparseVector, limit: int
    ) -> list[Hit]: ...
    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]: ...
    async def put_document(self, record: DocumentRecord) -> None: ...
    async def get_document(self, tenant: str, document_id: str) -> DocumentRecord | None: ...
    async def list_documents(self, tenant: str) -> list[DocumentRecord]: ...
    async def delete_document(self, tenant: str, document_id: str) -> None: ...
    async def close(self) -> None: ...
