"""Tracing (Langfuse's real SDK, exporting to a loopback receiver that decodes what it sends) and
Prometheus metrics, through the real service."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.langfuse_sink import LangfuseSink, Span
from tests.service_runner import running_service
from tests.sse import stream_turn
from tests.unit.test_logs import JsonLines

NODES = ["recall", "classify", "direct", "generate", "check_quality", "remember"]
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def sink() -> Iterator[LangfuseSink]:
    receiver = LangfuseSink()
    yield receiver
    receiver.close()


def _tracing(base_url: str, **more: Any) -> dict[str, Any]:
    # A key of its own: the SDK keeps one client per public key in a process.
    return {
        "public_key": f"pk-lf-{uuid.uuid4().hex}",
        "secret_key": "sk-lf-test",
        "base_url": base_url,
        "flush_interval_s": 0.1,
        "export_timeout_s": 1,
        "shutdown_wait_s": 2,
        **more,
    }


def _script(backend: ScriptedBackend, route: str = "direct", **generator: Any) -> None:
    backend.set_default(Reply(text=f'{{"route": "{route}"}}'), model="router")
    backend.set_default(Reply(text='{"score": 4}'), model="judge")
    backend.set_default(Reply(text="Four wheels and a bell [1].", **generator), model="generator")


def _chat(url: str, text: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"model": "switchboard", "messages": [{"role": "user", "content": text}], **extra}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _root(spans: list[Span]) -> Span:
    """The run's root: the one span whose parent is not in the trace."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    assert len(roots) == 1, [s.name for s in roots]
    return roots[0]


def _children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def _trace(sink: LangfuseSink, trace_id: str, last: str = "remember") -> list[Span]:
    """The trace once its root (which ends last) and the node `last` have arrived."""
    names = lambda: {s.name for s in sink.trace(trace_id)}  # noqa: E731
    sink.wait_for(lambda: {"switchboard", last} <= names())
    return sink.trace(trace_id)


def test_a_direct_run_is_one_trace_of_nodes_and_generations_with_session_user_and_score(
    backend: ScriptedBackend, sink: LangfuseSink
) -> None:
    _script(backend)
    settings = make_settings(
        backend_entry("primary", backend),
        tracing=_tracing(sink.url, trace_url="https://langfuse.example/traces/{trace_id}"),
    )
    with running_service(settings) as url:
        response = _chat(url, "How many wheels?", user="ada", headers={"traceparent": CALLER})
        streamed = httpx.post(
            f"{url}/v1/chat/stream",
            json={"messages": [{"role": "user", "content": "And a bell?"}]},
            timeout=30,
        )
    trace_id = response.headers["X-Trace-Id"]
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"  # the caller's trace, joined
    spans = _trace(sink, trace_id)
    root = _root(spans)
    assert root.name == "switchboard" and root.kind == "span"
    assert root.parent_span_id == "b7ad6b7169203331"  # under the caller's span
    assert root.attributes["session.id"] == response.headers["X-Thread-Id"]
    assert root.attributes["user.id"] == "ada"
    assert root.json("langfuse.trace.metadata.run_id") == response.headers["X-Run-Id"]
    assert "workflow:switchboard" in root.attributes["langfuse.trace.tags"]
    assert root.json("langfuse.observation.output") == "Four wheels and a bell [1]."

    nodes = _children(spans, root)
    assert [n.name for n in sorted(nodes, key=lambda n: NODES.index(n.name))] == NODES
    assert {n.kind for n in nodes} == {"chain"}
    by_name = {n.name: n for n in nodes}
    assert "route:direct" in by_name["generate"].attributes["langfuse.trace.tags"]
    # Each model call is a generation under the node that made it, with model and usage.
    calls = (("classify", "router"), ("generate", "generator"), ("check_quality", "judge"))
    for node, model in calls:
        (call,) = [c for c in _children(spans, by_name[node]) if c.kind == "generation"]
        assert call.attributes["langfuse.observation.model.name"] == model
        usage = call.json("langfuse.observation.usage_details")
        assert usage["input"] > 0 and usage["output"] > 0
    generation = next(c for c in _children(spans, by_name["generate"]))
    assert generation.json("langfuse.observation.output") == "Four wheels and a bell [1]."
    assert "langfuse.observation.completion_start_time" in generation.attributes

    # The judge's score (4 of 5) is the trace's `quality` score.
    sink.wait_for(lambda: any(s["traceId"] == trace_id for s in sink.scores))
    (score,) = [s for s in sink.scores if s["traceId"] == trace_id]
    assert score["name"] == "quality" and score["value"] == 0.75
    assert all(a.startswith("Basic ") for a in sink.authorizations)

    # The native stream's metadata event names the trace (a new one: no traceparent) and its link.
    assert streamed.status_code == 200
    metadata = streamed.text.split("\n\n")[0]
    other = streamed.headers["X-Trace-Id"]
    assert other != trace_id and len(other) == 32
    assert f'"trace_id":"{other}"' in metadata
    assert f"https://langfuse.example/traces/{other}" in metadata
    assert _root(_trace(sink, other)).attributes["session.id"] == streamed.headers["X-Thread-Id"]


def test_a_rag_run_has_retrieval_spans_with_their_counts(
    backend: ScriptedBackend, sink: LangfuseSink
) -> None:
    _script(backend, route="rag")
    settings = make_settings(backend_entry("primary", backend), tracing=_tracing(sink.url))
    with running_service(settings) as url:
        uploaded = httpx.post(
            f"{url}/documents",
            json={"title": "Cars", "text": "The funicular's cars have four wheels and a bell."},
            timeout=30,
        )
        assert uploaded.status_code == 200, uploaded.text
        response = _chat(url, "How many wheels do the cars have?")
    spans = _trace(sink, response.headers["X-Trace-Id"])
    root = _root(spans)
    (rag,) = [n for n in _children(spans, root) if n.name == "rag"]
    (retrieval,) = _children(spans, rag)
    assert retrieval.name == "retrieval" and retrieval.kind == "retriever"
    assert retrieval.json("langfuse.observation.input") == {
        "query": "How many wheels do the cars have?"
    }
    assert retrieval.json("langfuse.observation.output")["sources"] >= 1
    (qdrant,) = _children(spans, retrieval)
    assert qdrant.name == "qdrant" and qdrant.json("langfuse.observation.output")["hits"] >= 1
    generate = next(n for n in _children(spans, root) if n.name == "generate")
    assert "route:rag" in generate.attributes["langfuse.trace.tags"]


def test_concurrent_runs_are_separate_traces_and_usage_is_counted_when_the_backend_omits_it(
    backend: ScriptedBackend, sink: LangfuseSink
) -> None:
    _script(backend, usage=False)  # the generator reports no usage, as llama.cpp's server
    settings = make_settings(backend_entry("primary", backend), tracing=_tracing(sink.url))

    async def both(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": "switchboard", "stream": True}
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            f"{url}/v1/chat/completions",
                            json={**body, "messages": [{"role": "user", "content": q}]},
                        )
                        for q in ("First?", "Second?")
                    )
                )
            )

    with running_service(settings) as url:
        responses = asyncio.run(both(url))
    trace_ids = [r.headers["X-Trace-Id"] for r in responses]
    assert len(set(trace_ids)) == 2
    for trace_id, question in zip(trace_ids, ("First?", "Second?"), strict=True):
        spans = _trace(sink, trace_id)
        root = _root(spans)
        assert root.json("langfuse.observation.input")["messages"][-1]["content"] == question
        assert len([s for s in spans if s.name == "generate"]) == 1
        (generation,) = [s for s in spans if s.kind == "generation" and s.name == "generator"]
        usage = generation.json("langfuse.observation.usage_details")
        assert usage["output"] == 6 and usage["input"] > 0  # 6 streamed pieces, counted by us
        assert generation.json("langfuse.observation.metadata.usage_estimated") is True


def _silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _silent_port()


@pytest.mark.parametrize("where", ["refused", "silent"])
def test_an_unreachable_langfuse_changes_nothing_for_clients(
    backend: ScriptedBackend, silent_port: int, where: str
) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    port = refused if where == "refused" else silent_port
    _script(backend)
    settings = make_settings(
        backend_entry("primary", backend), tracing=_tracing(f"http://127.0.0.1:{port}")
    )
    with running_service(settings) as url:
        for n in range(5):
            response = _chat(url, f"Question {n}?", stream=n % 2 == 0)
            assert "X-Trace-Id" in response.headers
        stopping = time.monotonic()
    # Shutdown waits for the last spans at most `shutdown_wait_s` (2 s), then gives up.
    assert time.monotonic() - stopping < 8


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_as_requests_run(backend: ScriptedBackend) -> None:
    _script(backend)
    with running_service(make_settings(backend_entry("primary", backend))) as url:
        before = _samples(url)
        _chat(url, "One?")
        _chat(url, "Two?", stream=True)
        for _ in range(2):  # unmatched paths share one label value: the label set stays bounded
            assert httpx.get(f"{url}/no/such/{uuid.uuid4().hex}").status_code == 404
        after = _samples(url)
    route = "/v1/chat/completions"
    requests = "switchboard_http_requests_total"
    assert _value(after, requests, method="POST", route=route, status="200") == (
        _value(before, requests, method="POST", route=route, status="200") + 2
    )
    runs = "switchboard_runs_total"
    labels = {"workflow": "switchboard", "route": "direct", "status": "success"}
    assert _value(after, runs, **labels) == _value(before, runs, **labels) + 2
    tokens = "switchboard_llm_tokens_total"
    out = {"backend": "primary", "model": "generator", "direction": "out"}
    assert _value(after, tokens, **out) >= _value(before, tokens, **out) + 2 * 6
    first = "switchboard_llm_time_to_first_token_seconds_count"
    model = {"backend": "primary", "model": "generator"}
    assert _value(after, first, **model) == _value(before, first, **model) + 2
    duration = "switchboard_run_duration_seconds_count"
    assert _value(after, duration, workflow="switchboard", route="direct") >= 2
    assert (
        _value(after, "switchboard_backend_circuit_state", backend="primary", state="closed") == 1
    )
    assert ("switchboard_run_queue_depth", ()) in after
    assert ("switchboard_active_streams", ()) in after
    store = "switchboard_store_operation_seconds_count"
    assert _value(after, store, store="redis", operation="checkpoint_save") >= 2
    assert _value(after, store, store="redis", operation="run_finish") >= 2
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert _value(after, requests, **unmatched) == _value(before, requests, **unmatched) + 2


def test_a_crew_run_nests_its_tasks_agents_model_and_tool_calls_under_the_crew_node(
    backend: ScriptedBackend, sink: LangfuseSink
) -> None:
    from tests.service.test_crew import MANUAL, _script_crew

    settings = make_settings(backend_entry("p", backend), tracing=_tracing(sink.url))
    with running_service(settings) as url:
        uploaded = httpx.post(
            f"{url}/documents", json={"text": MANUAL, "title": "Rail manual"}, timeout=30
        )
        assert uploaded.status_code == 200, uploaded.text
        _script_crew(backend)
        events = stream_turn(url, "Write a short report on signal lamp inspections.", route="crew")
    trace_id = events[0].data["trace_id"]
    spans = _trace(sink, trace_id)
    root = _root(spans)  # one trace: CrewAI's steps are not a second, disconnected one
    (crew,) = [n for n in _children(spans, root) if n.name == "crew"]
    tasks = [t for t in _children(spans, crew) if t.name.startswith("task:")]
    assert [t.name for t in tasks].count("task:research") == 1
    # The search tool's look-up in Qdrant (run on the service's loop) is in the same trace.
    (lookup,) = [s for s in _children(spans, crew) if s.name == "qdrant"]
    assert lookup.json("langfuse.observation.output")["hits"] >= 1
    assert {t.name for t in tasks} == {"task:research", "task:write", "task:review"}
    research = next(t for t in tasks if t.name == "task:research")
    (researcher,) = _children(spans, research)
    assert researcher.name == "researcher" and researcher.kind == "agent"
    steps = _children(spans, researcher)
    tool = next(s for s in steps if s.kind == "tool")
    assert tool.name == "tool:search_documents"
    assert "two-person crew" in tool.json("langfuse.observation.output")
    calls = [s for s in steps if s.kind == "generation"]
    assert len(calls) == 2  # asked for the tool, then answered with the facts
    for call in calls:
        assert call.attributes["langfuse.observation.model.name"] == "crew"
        usage = call.json("langfuse.observation.usage_details")
        assert usage["input"] > 0 and usage["output"] > 0
    # The writer's and the reviewer's calls nest under their own agents: two drafts, two reviews.
    writers = [s for s in spans if s.name == "writer" and s.kind == "agent"]
    assert len(writers) == 2
    assert all(len(_children(spans, w)) == 1 for w in writers)


def test_a_run_s_log_lines_carry_its_run_thread_and_trace_ids(backend: ScriptedBackend) -> None:
    _script(backend)
    backend.set_default(Reply(failure="http500"), model="generator")  # the run logs its failure
    lines = JsonLines()
    logging.getLogger().addHandler(lines)
    try:
        with running_service(make_settings(backend_entry("primary", backend))) as url:
            body = {"model": "switchboard", "messages": [{"role": "user", "content": "Hi?"}]}
            response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    finally:
        logging.getLogger().removeHandler(lines)
    assert response.status_code == 503
    ids = {
        "run_id": response.headers["X-Run-Id"],
        "thread_id": response.headers["X-Thread-Id"],
        "trace_id": response.headers["X-Trace-Id"],
    }
    of_run = [line for line in lines.lines if line.get("run_id") == ids["run_id"]]
    assert any("failed" in line["message"] for line in of_run), lines.lines
    assert all({k: line[k] for k in ids} == ids for line in of_run)


def test_a_graph_augmented_rag_run_traces_its_neo4j_look_up(
    backend: ScriptedBackend, sink: LangfuseSink, neo4j_url: str
) -> None:
    from tests.service.test_knowledge_graph import WITH_GRAPH, WITH_TEXT

    _script(backend, route="rag")
    settings = make_settings(
        backend_entry("p", backend), graph={"url": neo4j_url}, tracing=_tracing(sink.url)
    )
    tenant = {"X-Switchboard-Tenant": f"t-{uuid.uuid4().hex[:8]}"}
    with running_service(settings) as url:
        backend.enqueue(Reply(text=json.dumps(WITH_GRAPH)), model="extractor")
        uploaded = httpx.post(
            f"{url}/documents",
            json={"text": WITH_TEXT, "title": "The with statement"},
            headers=tenant,
            timeout=30,
        )
        assert uploaded.status_code == 200, uploaded.text
        response = _chat(url, "What does the with statement use?", headers=tenant)
    spans = _trace(sink, response.headers["X-Trace-Id"])
    (retrieval,) = [s for s in spans if s.name == "retrieval"]
    assert retrieval.json("langfuse.observation.output")["facts"] >= 1
    assert retrieval.json("langfuse.observation.metadata.graph") is True
    looked_up = {s.name: s for s in _children(spans, retrieval)}
    assert set(looked_up) == {"neo4j", "qdrant"}
    neo4j = looked_up["neo4j"]
    assert neo4j.kind == "retriever"
    assert neo4j.json("langfuse.observation.input") == {
        "query": "What does the with statement use?"
    }
    found = neo4j.json("langfuse.observation.output")
    assert found["entities"] >= 1 and found["facts"] >= 1 and found["chunks"] >= 1
