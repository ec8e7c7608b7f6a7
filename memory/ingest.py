"""The ingestion pipeline: bytes → text → chunks → stages (vectors now; the knowledge graph joins
as one more stage) → published.

Every stage writes under the document's id and can undo what it wrote. Chunks become searchable
only when every stage has finished (`ChunkStore.publish`); a failure undoes every stage and marks
the document failed with the reason, and ingesting the same content again retries it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from memory.chunking import Chunk, chunk_document
from memory.documents import DocumentRecord, DocumentStatus, MetadataValue, document_id
from memory.extract import ExtractedDocument, extract, extract_text
from memory.sparse import encode_document
from memory.store import ChunkRecord, ChunkStore
from switchboard.embeddings import Embedder
from switchboard.errors import SwitchboardError
from switchboard.settings import RetrievalSettings

log = logging.getLogger(__name__)


class IngestStage(Protocol):
    """One step that turns a document's chunks into something searchable."""

    name: str

    async def run(self, record: DocumentRecord, chunks: Sequence[Chunk]) -> None: ...

    async def undo(self, tenant: str, document_id: str) -> dict[str, int]:
        """Remove what `run` wrote for the document; counts of what was removed."""
        ...


class VectorStage:
    """Embeds chunks in batches and writes them to the chunk store, unsearchable."""

    name = "vectors"

    def __init__(self, store: ChunkStore, embedder: Embedder, batch_size: int) -> None:
        self._store = store
        self._embedder = embedder
        self._batch_size = batch_size

    async def run(self, record: DocumentRecord, chunks: Sequence[Chunk]) -> None:
        for start in range(0, len(chunks), self._batch_size):
            batch = chunks[start : start + self._batch_size]
            vectors = await self._embedder.embed([c.text for c in batch])
            await self._store.upsert_chunks(
                [
                    ChunkRecord(
                        document_id=record.id,
                        tenant=record.tenant,
                        index=chunk.index,
                        text=chunk.text,
                        title=record.title,
                        source=record.source,
                        section=chunk.section,
                        page=chunk.page,
                        dense=vector,
                        sparse=encode_document(
                            f"{record.title}\n{chunk.section or ''}\n{chunk.text}"
                        ),
                        metadata=record.metadata,
                    )
                    for chunk, vector in zip(batch, vectors, strict=True)
                ]
            )

    async def undo(self, tenant: str, document_id: str) -> dict[str, int]:
        return {"chunks": await self._store.delete_chunks(tenant, document_id)}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document read and registered, ready to run through the stages (or already done)."""

    record: DocumentRecord
    extracted: ExtractedDocument | None  # None when the content was already ingested

    @property
    def done(self) -> bool:
        return self.extracted is None


class Ingestor:
    def __init__(
        self,
        store: ChunkStore,
        settings: RetrievalSettings,
        stages: Sequence[IngestStage],
    ) -> None:
        self._store = store
        self._settings = settings
        self._stages = list(stages)

    def add_stage(self, stage: IngestStage) -> None:
        """A stage whose store opened after this pipeline was built (the knowledge graph); it
        applies to documents run from now on."""
        self._stages.append(stage)

    async def prepare_file(
        self,
        tenant: str,
        filename: str,
        data: bytes,
        metadata: Mapping[str, MetadataValue] | None = None,
        owner: str | None = None,
    ) -> Prepared:
        """Read a file (4xx errors for unsupported, corrupt or empty ones) and register it;
        the same bytes already ingested for this tenant come back as `done`."""
        return await self._prepare(
            tenant, filename, data, lambda: extract(filename, data), metadata, owner
        )

    async def prepare_text(
        self,
        tenant: str,
        text: str,
        title: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
        owner: str | None = None,
    ) -> Prepared:
        data = text.encode()
        return await self._prepare(
            tenant, title or "text", data, lambda: extract_text(text, title), metadata, owner
        )

    async def _prepare(
        self,
        tenant: str,
        source: str,
        data: bytes,
        read: _Reader,
        metadata: Mapping[str, MetadataValue] | None,
        owner: str | None,
    ) -> Prepared:
        content_hash = hashlib.sha256(data).hexdigest()
        identity = document_id(tenant, content_hash)
        existing = await self._store.get_document(tenant, identity)
        if existing is not None and existing.status is DocumentStatus.READY:
            return Prepared(existing, None)
        extracted = read()
        record = DocumentRecord(
            id=identity,
            tenant=tenant,
            title=extracted.title,
            source=source,
            format=extracted.format,
            content_hash=content_hash,
            size_bytes=len(data),
            metadata=dict(metadata or {}),
            owner=owner,
        )
        await self._store.put_document(record)
        return Prepared(record, extracted)

    async def run(self, prepared: Prepared) -> DocumentRecord:
        """Chunk and run every stage; publish on success, undo and mark failed otherwise.
        Returns the final record (ready or failed); never raises for a stage's failure."""
        record = prepared.record
        if prepared.extracted is None:
            return record
        started = time.perf_counter()
        chunks = chunk_document(
            prepared.extracted, self._settings.chunk_tokens, self._settings.chunk_overlap
        )
        try:
            for stage in self._stages:
                await stage.run(record, chunks)
            await self._store.publish(record.tenant, record.id)
        except SwitchboardError as exc:
            log.warning("ingestion of %s failed: %s", record.id, exc.message)
            await self._undo(record)
            record.status, record.error = DocumentStatus.FAILED, exc.message
        else:
            record.status, record.error, record.chunk_count = (
                DocumentStatus.READY,
                None,
                len(chunks),
            )
            log.info(
                "ingested %s (%d chunks) in %.2fs",
                record.source,
                len(chunks),
                time.perf_counter() - started,
            )
        record.updated_at = time.time()
        await self._store.put_document(record)
        return record

    async def _undo(self, record: DocumentRecord) -> None:
        for stage in reversed(self._stages):
            try:
                await stage.undo(record.tenant, record.id)
            except SwitchboardError as exc:  # keep undoing the others; report the first failure
                log.error("could not undo stage %s of %s: %s", stage.name, record.id, exc.message)

    async def delete(self, tenant: str, document_id: str) -> dict[str, int]:
        """Remove a document and everything its stages wrote; counts of what was removed."""
        removed = {"documents": 1}
        for stage in self._stages:
            removed.update(await stage.undo(tenant, document_id))
        await self._store.delete_document(tenant, document_id)
        return removed


class _Reader(Protocol):
    def __call__(self) -> ExtractedDocument: ...
