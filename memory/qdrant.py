"""Chunks and document records in Qdrant: one implementation for a Qdrant server (URL) and for
qdrant-client's local mode (a folder), which the embedded default and the tests use. Its own
module because qdrant-client takes about a second to import: the service imports it in the
background after start-up (`switchboard.opening`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memory.documents import DocumentRecord
from memory.sparse import SparseVector
from memory.store import DENSE, SPARSE, ChunkRecord, Hit, SearchFilter, StoreUnavailable
from switchboard.errors import SwitchboardError

log = logging.getLogger(__name__)


class QdrantStore:
    """`ChunkStore` over qdrant-client, server or local mode."""

    def __init__(
        self, *, collection: str, url: str | None, api_key: str | None, path: Path | None
    ) -> None:
        self.collection = collection
        self.documents = f"{collection}_documents"
        self.local = url is None
        if url is None:
            assert path is not None, "local mode needs a folder"
            try:
                path.mkdir(parents=True, exist_ok=True)
                self._client = AsyncQdrantClient(path=str(path))
            except (OSError, RuntimeError) as exc:  # RuntimeError: another client holds it
                raise StoreUnavailable(f"Qdrant's folder is unavailable: {exc}") from None
        else:
            # No version probe: it runs in a thread and fails noisily when the server is down.
            self._client = AsyncQdrantClient(
                url=url, api_key=api_key, timeout=10, check_compatibility=False
            )

    async def close(self) -> None:
        await self._client.close()

    async def ensure_schema(self, dimension: int) -> None:
        """Create the collections if missing; refuse an existing one of another dimension."""
        try:
            await self._ensure_schema(dimension)
        except (ResponseHandlingException, UnexpectedResponse, OSError) as exc:
            raise StoreUnavailable(f"Qdrant is unavailable: {exc}") from None

    async def _ensure_schema(self, dimension: int) -> None:
        client = self._client
        if await client.collection_exists(self.collection):
            info = await client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
            if size != dimension:
                raise SwitchboardError(
                    f"collection {self.collection!r} holds {size}-dimensional vectors but the "
                    f"embedder makes {dimension}: use another SWITCHBOARD_RETRIEVAL__COLLECTION"
                )
        else:
            await client.create_collection(
                self.collection,
                vectors_config={
                    DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
            if not self.local:  # local mode has no payload indexes (and warns)
                for key, schema in (
                    ("tenant", models.PayloadSchemaType.KEYWORD),
                    ("document_id", models.PayloadSchemaType.KEYWORD),
                    ("searchable", models.PayloadSchemaType.BOOL),
                ):
                    await client.create_payload_index(self.collection, key, schema)
        if not await client.collection_exists(self.documents):
            await client.create_collection(self.documents, vectors_config={})

    async def upsert_chunks(self, chunks: Sequence[ChunkRecord]) -> None:
        points = [
            models.PointStruct(
                id=chunk.id,
                vector={
                    DENSE: chunk.dense,
                    SPARSE: models.SparseVector(
                        indices=chunk.sparse.indices, values=chunk.sparse.values
                    ),
                },
                payload={
                    "document_id": chunk.document_id,
                    "tenant": chunk.tenant,
                    "index": chunk.index,
                    "text": chunk.text,
                    "title": chunk.title,
                    "source": chunk.source,
                    "section": chunk.section,
                    "page": chunk.page,
                    "metadata": dict(chunk.metadata),
                    "searchable": False,
                },
            )
            for chunk in chunks
        ]
        await self._guard(self._client.upsert(self.collection, points=points, wait=True))

    async def publish(self, tenant: str, document_id: str) -> None:
        await self._guard(
            self._client.set_payload(
                self.collection,
                payload={"searchable": True},
                points=_document_filter(tenant, document_id),
                wait=True,
            )
        )

    async def delete_chunks(self, tenant: str, document_id: str) -> int:
        where = _document_filter(tenant, document_id)
        count = await self._guard(self._client.count(self.collection, count_filter=where))
        await self._guard(
            self._client.delete(
                self.collection, points_selector=models.FilterSelector(filter=where), wait=True
            )
        )
        return int(count.count)

    async def count_chunks(self, tenant: str, document_id: str | None = None) -> int:
        where = _document_filter(tenant, document_id) if document_id else _tenant_filter(tenant)
        result = await self._guard(self._client.count(self.collection, count_filter=where))
        return int(result.count)

    async def hybrid_search(
        self, where: SearchFilter, dense: list[float], sparse: SparseVector, limit: int
    ) -> list[Hit]:
        """Dense and sparse candidates (`limit` each), fused by reciprocal rank."""
        query_filter = _search_filter(where)
        prefetch = [models.Prefetch(query=dense, using=DENSE, limit=limit, filter=query_filter)]
        if sparse.indices:
            prefetch.append(
                models.Prefetch(
                    query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                    using=SPARSE,
                    limit=limit,
                    filter=query_filter,
                )
            )
        response = await self._guard(
            self._client.query_points(
                self.collection,
                prefetch=prefetch,
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=limit,
                with_payload=True,
                with_vectors=[DENSE],
            )
        )
        return [_hit(point, float(point.score)) for point in response.points]

    async def get_chunks(self, tenant: str, chunk_ids: Sequence[str]) -> list[Hit]:
        """The searchable chunks of the tenant among `chunk_ids`, in that order (score 0)."""
        if not chunk_ids:
            return []
        points = await self._guard(
            self._client.retrieve(
                self.collection, ids=list(chunk_ids), with_payload=True, with_vectors=[DENSE]
            )
        )
        by_id = {
            str(p.id): p
            for p in points
            if (p.payload or {}).get("tenant") == tenant and (p.payload or {}).get("searchable")
        }
        return [_hit(by_id[c], 0.0) for c in chunk_ids if c in by_id]

    async def put_document(self, record: DocumentRecord) -> None:
        point = models.PointStruct(id=record.id, vector={}, payload=record.to_payload())
        await self._guard(self._client.upsert(self.documents, points=[point], wait=True))

    async def get_document(self, tenant: str, document_id: str) -> DocumentRecord | None:
        try:
            points = await self._guard(self._client.retrieve(self.documents, ids=[document_id]))
        except ValueError:  # not a UUID: no such document
            return None
        if not points or (points[0].payload or {}).get("tenant") != tenant:
            return None
        return DocumentRecord.from_payload(points[0].payload or {})

    async def list_documents(self, tenant: str) -> list[DocumentRecord]:
        records: list[DocumentRecord] = []
        offset: Any = None
        while True:
            points, offset = await self._guard(
                self._client.scroll(
                    self.documents,
                    scroll_filter=_tenant_filter(tenant),
                    limit=256,
                    offset=offset,
                    with_payload=True,
                )
            )
            records += [DocumentRecord.from_payload(p.payload or {}) for p in points]
            if offset is None:
                break
        return sorted(records, key=lambda r: r.created_at)

    async def delete_document(self, tenant: str, document_id: str) -> None:
        await self._guard(
            self._client.delete(
                self.documents, points_selector=models.PointIdsList(points=[document_id]), wait=True
            )
        )

    async def _guard(self, call: Any) -> Any:
        """Await a Qdrant call, translating transport failures into `StoreUnavailable`."""
        try:
            return await call
        except (ResponseHandlingException, UnexpectedResponse, OSError, RuntimeError) as exc:
            raise StoreUnavailable(f"Qdrant failed: {exc}") from None


def _hit(point: Any, score: float) -> Hit:
    payload = point.payload or {}
    vectors = point.vector if isinstance(point.vector, dict) else {}
    vector = vectors.get(DENSE, [])
    return Hit(
        chunk_id=str(point.id),
        document_id=payload["document_id"],
        index=payload["index"],
        text=payload["text"],
        title=payload["title"],
        source=payload["source"],
        section=payload.get("section"),
        page=payload.get("page"),
        score=score,
        dense=list(vector) if isinstance(vector, list) else [],
    )


def _tenant_filter(tenant: str) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="tenant", match=models.MatchValue(value=tenant))]
    )


def _document_filter(tenant: str, document_id: str) -> models.Filter:
    return models.Filter(
        must=[
            models.FieldCondition(key="tenant", match=models.MatchValue(value=tenant)),
            models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id)),
        ]
    )


def _search_filter(where: SearchFilter) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key="tenant", match=models.MatchValue(value=where.tenant)),
        models.FieldCondition(key="searchable", match=models.MatchValue(value=True)),
    ]
    if where.document_ids:
        must.append(
            models.FieldCondition(
                key="document_id", match=models.MatchAny(any=list(where.document_ids))
            )
        )
    for key, value in where.metadata.items():
        if isinstance(value, float):
            must.append(
                models.FieldCondition(
                    key=f"metadata.{key}", range=models.Range(gte=value, lte=value)
                )
            )
        else:
            must.append(
                models.FieldCondition(key=f"metadata.{key}", match=models.MatchValue(value=value))
            )
    return models.Filter(must=must)
