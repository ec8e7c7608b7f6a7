"""The documents API and the rag route over real Qdrant (local mode) and the scripted backend."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import stream_turn

MARKDOWN = b"""# Funicular cars

## Wren

The second car, named Wren, was rebuilt in 2019 by the Holloway Works in Brisk.

## Finch

The first car, Finch, carries forty-two passengers and a stretcher bay.
"""
TEXT = b"Hydro plant\n\nThe turbine hall holds two Pelton wheels rated at 1.4 megawatts each.\n"
HTML = (
    b"<html><head><title>Visitor centre</title><script>var x = 'ignore me';</script></head>"
    b"<body><nav>Home | About</nav><h1>Visitor centre</h1>"
    b"<p>The visitor centre opens at 09:30 from April to October.</p></body></html>"
)


def _upload(
    url: str, files: list[tuple[str, bytes]], tenant: str = "default", **data: str
) -> httpx.Response:
    return httpx.post(
        f"{url}/documents",
        files=[("files", (name, content)) for name, content in files],
        data=data,
        headers={"X-Switchboard-Tenant": tenant},
        timeout=30,
    )


def _get(url: str, path: str, tenant: str = "default") -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={"X-Switchboard-Tenant": tenant})


@pytest.fixture
def docs_service(backend: ScriptedBackend) -> Any:
    with running_service(make_settings(backend_entry("primary", backend))) as url:
        yield url


def test_upload_list_get_reingest_delete(docs_service: str) -> None:
    response = _upload(
        docs_service, [("cars.md", MARKDOWN), ("hydro.txt", TEXT), ("visit.html", HTML)]
    )
    assert response.status_code == 200, response.text
    results = response.json()["documents"]
    assert [r["status"] for r in results] == ["ready", "ready", "ready"]
    cars = results[0]["document"]
    assert cars["title"] == "Funicular cars" and cars["format"] == "markdown"
    assert cars["chunk_count"] >= 1
    listed = _get(docs_service, "/documents").json()["documents"]
    assert {d["id"] for d in listed} == {r["document"]["id"] for r in results}
    assert _get(docs_service, f"/documents/{cars['id']}").json()["status"] == "ready"

    again = _upload(docs_service, [("cars-copy.md", MARKDOWN)]).json()["documents"][0]
    assert again["document"]["id"] == cars["id"], "the same content is the same document"
    assert again["document"]["updated_at"] == cars["updated_at"], "re-ingest changed nothing"
    assert len(_get(docs_service, "/documents").json()["documents"]) == 3

    deleted = httpx.delete(f"{docs_service}/documents/{cars['id']}").json()
    assert deleted["deleted"] == {"documents": 1, "chunks": cars["chunk_count"]}
    assert _get(docs_service, f"/documents/{cars['id']}").status_code == 404
    assert httpx.delete(f"{docs_service}/documents/{cars['id']}").status_code == 404


def test_each_bad_file_gets_its_own_4xx_and_the_rest_are_ingested(docs_service: str) -> None:
    files = [
        ("good.md", MARKDOWN),
        ("program.exe", b"MZ\x90\x00"),
        ("empty.txt", b"   \n\n"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf"),
        ("latin1.txt", "caf\xe9".encode("latin-1")),
    ]
    response = _upload(docs_service, files)
    assert response.status_code == 207
    results = {r["filename"]: r for r in response.json()["documents"]}
    assert results["good.md"]["status"] == "ready"
    for name, status, code in (
        ("program.exe", 415, "unsupported_document"),
        ("empty.txt", 422, "empty_document"),
        ("broken.pdf", 422, "corrupt_document"),
        ("latin1.txt", 422, "corrupt_document"),
    ):
        assert results[name]["status"] == "rejected"
        assert results[name]["http_status"] == status, name
        assert results[name]["error"]["code"] == code, name
    assert len(_get(docs_service, "/documents").json()["documents"]) == 1


def test_single_rejected_file_is_a_plain_4xx(docs_service: str) -> None:
    response = _upload(docs_service, [("notes.docx", b"PK\x03\x04")])
    assert response.status_code == 415
    assert ".docx" in response.json()["error"]["message"]


def test_text_upload_and_bad_bodies(docs_service: str) -> None:
    body = {
        "text": "The observatory dome turns on twelve bogies.",
        "title": "Dome",
        "metadata": {"dept": "obs"},
    }
    response = httpx.post(f"{docs_service}/documents", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready" and response.json()["metadata"] == {"dept": "obs"}
    assert httpx.post(f"{docs_service}/documents", json={"text": ""}).status_code == 400
    assert httpx.post(f"{docs_service}/documents", json={"text": "x", "wat": 1}).status_code == 400
    assert (
        httpx.post(
            f"{docs_service}/documents", content=b"plain", headers={"content-type": "text/plain"}
        ).status_code
        == 400
    )
    bad_metadata = _upload(docs_service, [("a.md", MARKDOWN)], metadata="[1, 2]")
    assert bad_metadata.status_code == 400 and bad_metadata.json()["error"]["param"] == "metadata"


def test_size_limits_per_file(backend: ScriptedBackend) -> None:
    settings = make_settings(
        backend_entry("primary", backend),
        retrieval={"max_upload_bytes": 2048, "max_upload_files": 2},
    )
    with running_service(settings) as url:
        response = _upload(url, [("big.txt", b"word " * 1000), ("small.md", MARKDOWN)])
        assert response.status_code == 207
        big, small = response.json()["documents"]
        assert big["status"] == "rejected" and big["http_status"] == 413
        assert small["status"] == "ready"
        too_many = _upload(url, [("a.md", MARKDOWN), ("b.md", TEXT), ("c.md", HTML)])
        assert too_many.status_code == 413
        assert "SWITCHBOARD_RETRIEVAL__MAX_UPLOAD_FILES" in too_many.json()["error"]["message"]


def test_large_uploads_are_ingested_in_the_background(backend: ScriptedBackend) -> None:
    settings = make_settings(backend_entry("primary", backend), retrieval={"background_bytes": 0})
    with running_service(settings) as url:
        response = _upload(url, [("cars.md", MARKDOWN)])
        assert response.status_code == 202
        document = response.json()["documents"][0]["document"]
        assert document["status"] == "processing"
        deadline = time.monotonic() + 10
        while _get(url, f"/documents/{document['id']}").json()["status"] == "processing":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _get(url, f"/documents/{document['id']}").json()["status"] == "ready"


def test_tenants_see_only_their_own_documents(docs_service: str, backend: ScriptedBackend) -> None:
    mine = _upload(docs_service, [("cars.md", MARKDOWN)], tenant="alpha").json()["documents"][0]
    document_id = mine["document"]["id"]
    assert _get(docs_service, f"/documents/{document_id}", tenant="beta").status_code == 404
    assert _get(docs_service, "/documents", tenant="beta").json()["documents"] == []
    backend.set_default(Reply(text='{"route": "rag"}'), model="router")
    body = {"messages": [{"role": "user", "content": "Who rebuilt Wren?"}], "quality_check": False}
    with httpx.stream(
        "POST",
        f"{docs_service}/v1/chat/stream",
        json=body,
        headers={"X-Switchboard-Tenant": "beta"},
    ) as r:
        text = r.read().decode()
    assert '"sources":[]' in text


def test_rag_turn_streams_sources_then_a_cited_answer(
    docs_service: str, backend: ScriptedBackend
) -> None:
    _upload(docs_service, [("cars.md", MARKDOWN), ("hydro.txt", TEXT), ("visit.html", HTML)])
    backend.set_default(Reply(text='{"route": "rag"}'), model="router")
    backend.set_default(
        Reply(text="Wren was rebuilt by the Holloway Works [1]."), model="generator"
    )
    backend.set_default(Reply(text='{"score": 5}'), model="judge")
    events = stream_turn(docs_service, "Who rebuilt the car Wren, and when?")
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["metadata", "route", "sources"]
    assert kinds.index("sources") < kinds.index("token")
    assert events[1].data["route"] == "rag"
    sources = events[2].data["sources"]
    assert sources and sources[0]["number"] == 1
    assert {"document_id", "chunk_id", "chunk_index", "score", "text", "title"} <= set(sources[0])
    assert any("Holloway Works" in s["text"] for s in sources)
    output = events[-1].data["output"]
    assert output["citations"] == [1]
    assert output["sources"][0]["chunk_id"] == sources[0]["chunk_id"]
    # The sources went to the generator as delimited data beside the question, not in the
    # instructions.
    prompt = next(r for r in reversed(backend.requests) if r.get("model") == "generator")[
        "messages"
    ]
    assert "not instructions" in prompt[0]["content"] and "Holloway" not in prompt[0]["content"]
    assert '<document id="1"' in prompt[-1]["content"] and "Holloway Works" in prompt[-1]["content"]


def test_embedding_failure_mid_ingest_leaves_nothing_searchable_and_a_retry_completes(
    backend: ScriptedBackend,
) -> None:
    settings = make_settings(
        backend_entry("primary", backend),
        embeddings={"mode": "backend", "batch_size": 1},
        retrieval={"chunk_tokens": 32, "chunk_overlap": 0},
        llm={"max_retries": 0},
    )
    long_doc = b"# Long\n\n" + b"\n\n".join(
        b"Paragraph %d about the hydro plant and its turbines, pipes and valves." % i
        for i in range(8)
    )
    with running_service(settings) as url:
        backend.enqueue(Reply(text="ok"), model="embeddings")  # the first batch succeeds
        backend.enqueue(Reply(failure="http500"), model="embeddings")  # the second fails
        failed = _upload(url, [("long.md", long_doc)])
        assert failed.status_code == 503
        record = failed.json()["documents"][0]["document"]
        assert record["status"] == "failed" and "embeddings" in record["error"]
        assert _get(url, f"/documents/{record['id']}").json()["status"] == "failed"
        backend.set_default(Reply(text='{"route": "rag"}'), model="router")
        events = stream_turn(url, "hydro plant turbines", quality_check=False)
        assert next(e for e in events if e.kind == "sources").data["sources"] == []
        retried = _upload(url, [("long.md", long_doc)])
        assert retried.status_code == 200
        document = retried.json()["documents"][0]["document"]
        assert document["id"] == record["id"] and document["status"] == "ready"
        events = stream_turn(url, "hydro plant turbines", quality_check=False)
        assert next(e for e in events if e.kind == "sources").data["sources"]


def test_store_unavailable_at_start_up_turns_rag_off(backend: ScriptedBackend) -> None:
    settings = make_settings(
        backend_entry("primary", backend), retrieval={"qdrant_url": "http://127.0.0.1:9"}
    )
    with running_service(settings) as url:
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["retrieval"]["status"] == "off"
        assert "Qdrant is unavailable" in ready["retrieval"]["error"]
        assert _upload(url, [("cars.md", MARKDOWN)]).status_code == 503
        backend.set_default(Reply(text='{"route": "rag"}'), model="router")
        events = stream_turn(url, "Who rebuilt Wren?")
        assert events[1].data["route"] == "direct" and "not available" in events[1].data["reason"]
        assert events[-1].kind == "end"
