"""Qdrant's folder unavailable (local mode: another Qdrant client holds the folder's lock, as a
second service pointed at the same data folder would): the service starts with documents off
and says why, uploads are refused with 503, chat goes on, and once the folder is free the same
process opens it, with every document written before it."""

from __future__ import annotations

import gc
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.faults.conftest import FaultTable
from tests.faults.helpers import DIRECT, HEADERS, recovery_seconds, turn
from tests.service_runner import running_service

TEXT = "The observatory dome turns on twelve bogies."


def _listed(url: str, document_id: str) -> bool:
    response = httpx.get(f"{url}/documents", headers=HEADERS, timeout=10)
    return response.status_code == 200 and document_id in [
        d["id"] for d in response.json()["documents"]
    ]


# qdrant-client leaves its lock file open when it fails to take the lock (one per attempt to
# open the folder); the file is closed when collected, with a ResourceWarning: collected (below)
# while this test runs, so that the filter applies to exactly those.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <_io.FileIO name='[^']*/qdrant/\.lock'"
    ":pytest.PytestUnraisableExceptionWarning"
)
def test_qdrant_folder_unavailable(
    backend: ScriptedBackend, redis_url: str, fault_table: FaultTable
) -> None:
    """Shows: with the folder held elsewhere, `/readyz` is 200 with retrieval `off` and the
    reason, an upload and a listing are 503 `ingestion_failed` with `Retry-After`, and a chat
    turn still ends `end`; once the folder is released the document written before the fault
    is listed again and a new upload is `ready`, with no restart."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-faults-"))
    settings = make_settings(
        backend_entry("only", backend), server={"data_dir": data_dir}, redis={"url": redis_url}
    )
    backend.set_default(Reply(text="Hi."), model="generator")
    with running_service(settings) as url:
        first = httpx.post(
            f"{url}/documents", json={"text": TEXT, "title": "Dome"}, headers=HEADERS
        )
        assert first.status_code == 200, first.text
    document = first.json()["id"]

    holder = QdrantClient(path=str(data_dir / "qdrant"))
    try:
        with running_service(settings) as url:
            retrieval = httpx.get(f"{url}/readyz", timeout=10).json()["retrieval"]
            assert retrieval["status"] == "off"
            assert "already accessed by another instance" in retrieval["error"]
            for refused in (
                httpx.post(f"{url}/documents", json={"text": "More."}, headers=HEADERS),
                httpx.get(f"{url}/documents", headers=HEADERS),
            ):
                assert refused.status_code == 503, refused.text
                assert refused.headers["Retry-After"] == "1"
                assert refused.json()["error"]["code"] == "ingestion_failed"
            status, events = turn(url, "Hello?", f"t-{uuid.uuid4().hex[:8]}", **DIRECT)
            assert status == 200 and events[-1].kind == "end"

            holder.close()
            recovery = recovery_seconds(lambda: _listed(url, document))
            gc.collect()

            assert httpx.get(f"{url}/readyz", timeout=10).json()["retrieval"]["status"] == "up"
            added = httpx.post(
                f"{url}/documents", json={"text": "The dome is white."}, headers=HEADERS
            )
            assert added.status_code == 200 and added.json()["status"] == "ready"
            assert httpx.get(f"{url}/documents/{document}", headers=HEADERS).json()["status"] == (
                "ready"
            )
    finally:
        holder.close()
    fault_table.record(
        "Qdrant folder unavailable (locked)",
        "`/readyz` 200, retrieval `off` + reason; uploads and listings 503 `ingestion_failed` "
        "+ `Retry-After: 1`; chat works",
        "none (documents written before are listed again)",
        recovery,
    )
