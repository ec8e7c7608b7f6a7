"""Documents as the service tracks them: identity, status and what ingestion made of them."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

# Ids are derived from the tenant and the content, so the same bytes ingested twice are the same
# document (re-ingest is a no-op) and a chunk's id is stable across retries.
_NAMESPACE = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")

MetadataValue = str | int | float | bool


class DocumentStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


def document_id(tenant: str, content_hash: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x00{content_hash}"))


def chunk_id(document: str, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(document), str(index)))


@dataclass(slots=True)
class DocumentRecord:
    id: str
    tenant: str
    title: str
    source: str
    format: str
    content_hash: str
    size_bytes: int
    status: DocumentStatus = DocumentStatus.PROCESSING
    chunk_count: int = 0
    error: str | None = None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    owner: str | None = None  # the user who uploaded it (forgetting that user deletes it)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def to_payload(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> DocumentRecord:
        known = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        known["status"] = DocumentStatus(known["status"])
        return cls(**known)

    def public(self) -> dict[str, Any]:
        """The record as the API shows it."""
        return {k: v for k, v in self.to_payload().items() if k != "tenant"}
