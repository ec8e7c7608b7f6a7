"""The native stream: event order, one event per token, routing and the quality loop."""

import itertools

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import stream_turn


def test_events_in_order_one_per_token(service: str, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(tokens=["Hel", "lo", ",", " wor", "ld"]), model="generator")
    backend.set_default(Reply(text='{"score": 5}'), model="judge")
    events = stream_turn(service, "Say hello")
    kinds = [e.kind for e in events]
    assert kinds == [
        "metadata",
        "route",
        "token",
        "token",
        "token",
        "token",
        "token",
        "quality",
        "end",
    ]
    assert events[0].data["run_id"] and events[0].data["thread_id"]
    assert events[1].data == {
        "route": "direct",
        "requested": "direct",
        "reason": "classified by the router model",
    }
    assert [e.data["text"] for e in events if e.kind == "token"] == ["Hel", "lo", ",", " wor", "ld"]
    assert events[-2].data["score"] == 1.0
    output = events[-1].data["output"]
    assert output["answer"] == "Hello, world"
    assert output["route"] == "direct"
    assert "messages" not in output


def test_tokens_are_sent_as_they_arrive(service: str, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="direct"), model="router")
    backend.set_default(Reply(text="a b c d", gap=0.2), model="generator")
    backend.set_default(Reply(text="5"), model="judge")
    tokens = [e for e in stream_turn(service, "Go slowly") if e.kind == "token"]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tokens)]
    assert len(gaps) == 3
    assert all(gap > 0.1 for gap in gaps), gaps


def test_thread_id_is_echoed(service: str, backend: ScriptedBackend) -> None:
    events = stream_turn(service, "hi", thread_id="thread-42")
    assert events[0].data["thread_id"] == "thread-42"


def test_unavailable_routes_and_garbage_fall_back_to_direct(backend: ScriptedBackend) -> None:
    settings = make_settings(backend_entry("primary", backend), crew={"enabled": False})
    with running_service(settings) as service:
        _falls_back(service, backend)


def _falls_back(service: str, backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text='{"route": "crew"}'), model="router")  # the crew is off here
    backend.enqueue(Reply(text="I would say... maybe crew?"), model="router")
    backend.enqueue(Reply(failure="http500"), model="router")
    backend.set_default(Reply(failure="http500"), model="router")
    first = stream_turn(service, "Write a researched report on rail safety")[1].data
    assert first["route"] == "direct" and first["requested"] == "crew"
    assert "not available" in first["reason"]
    second = stream_turn(service, "Write me a report")[1].data
    assert second["route"] == "direct" and second["requested"] is None
    assert "unparsable" in second["reason"]
    third = stream_turn(service, "Anything")
    assert third[1].data["route"] == "direct" and "router model failed" in third[1].data["reason"]
    assert third[-1].kind == "end"


def test_classifier_asks_for_a_constrained_answer(service: str, backend: ScriptedBackend) -> None:
    stream_turn(service, "hello")
    router_calls = [r for r in backend.requests if r.get("model") == "router"]
    assert len(router_calls) == 1
    response_format = router_calls[0]["response_format"]
    assert response_format["type"] == "json_schema"
    enum = response_format["json_schema"]["schema"]["properties"]["route"]["enum"]
    assert sorted(enum) == ["crew", "direct", "rag"]


def test_pinned_route_skips_the_classifier(service: str, backend: ScriptedBackend) -> None:
    events = stream_turn(service, "hello", route="direct", quality_check=False)
    assert [e.kind for e in events if e.kind in ("route", "quality")] == ["route"]
    assert backend.request_count("router") == 0
    assert backend.request_count("judge") == 0


def test_low_score_retries_generation_once(service: str, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="direct"), model="router")
    backend.enqueue(Reply(text="bad answer"), model="generator")
    backend.enqueue(Reply(text="good answer"), model="generator")
    backend.enqueue(Reply(text='{"score": 1}'), model="judge")
    backend.enqueue(Reply(text='{"score": 1}'), model="judge")
    events = stream_turn(service, "Explain")
    kinds = [e.kind for e in events]
    first = ["metadata", "route", "token", "token", "quality"]
    assert kinds == [*first, "retry", "token", "token", "quality", "end"]
    qualities = [e.data for e in events if e.kind == "quality"]
    assert qualities[0]["retry"] is True and qualities[1]["retry"] is False
    assert events[-1].data["output"]["answer"] == "good answer"
    assert events[-1].data["output"]["attempts"] == 2
    assert backend.request_count("generator") == 2


def test_judge_failure_keeps_the_answer(service: str, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="fine"), model="generator")
    backend.set_default(Reply(text="no idea"), model="judge")
    events = stream_turn(service, "hi")
    quality = next(e for e in events if e.kind == "quality")
    assert quality.data["score"] is None and "unparsable" in quality.data["detail"]
    assert events[-1].kind == "end" and events[-1].data["output"]["answer"] == "fine"


def test_openapi_documents_the_surface(service: str) -> None:
    import httpx

    schema = httpx.get(f"{service}/openapi.json").json()
    for path in ("/v1/models", "/v1/chat/completions", "/v1/chat/stream", "/healthz", "/readyz"):
        assert path in schema["paths"], path
    docs = httpx.get(f"{service}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
