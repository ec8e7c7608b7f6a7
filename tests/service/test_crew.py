"""The crew route against the scripted backend: the crew's steps stream in order, a reviewer's
rejection causes a revision, the researcher's tool call reaches the real Qdrant; the research
crew as a workflow of its own; the client going away stops the crew's backend calls."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import Received, iter_events, stream_turn

MANUAL = (
    "Rail manual, chapter 4. Signal lamps on the northern line are inspected every 90 days by "
    "a two-person crew, and every inspection is logged in the signal register."
)


@pytest.fixture
def service(backend: ScriptedBackend) -> Iterator[str]:
    with running_service(make_settings(backend_entry("p", backend))) as url:
        yield url


def _tool_call(name: str, arguments: dict[str, Any]) -> Reply:
    return Reply(tool_calls=[{"function": {"name": name, "arguments": json.dumps(arguments)}}])


def _script_crew(backend: ScriptedBackend) -> None:
    crew = "crew"  # every agent uses the crew role's model, in turn
    backend.enqueue(_tool_call("search_documents", {"query": "signal lamp inspection"}), crew)
    backend.enqueue(Reply(text="- Signal lamps are inspected every 90 days (Rail manual)."), crew)
    backend.enqueue(Reply(text="Lamps are checked now and then."), crew)  # first draft
    backend.enqueue(Reply(text="CHANGES: give the interval and cite the manual."), crew)
    backend.enqueue(Reply(text="Signal lamps are inspected every 90 days (Rail manual)."), crew)
    backend.enqueue(Reply(text="APPROVED"), crew)
    backend.set_default(Reply(text='{"score": 5}'), model="judge")


def _crew_steps(events: list[Received]) -> list[tuple[str, str]]:
    return [(e.data["agent"], e.data["type"]) for e in events if e.kind == "crew"]


def _agent_steps(agent: str, middle: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    kinds = ("task_started", "agent_started", *middle, "agent_finished", "task_finished")
    return [(agent, kind) for kind in kinds]


# Research (with its tool call), then a draft and its review, twice: the first review asks for
# changes, the second approves.
DRAFT_AND_REVIEW = [*_agent_steps("writer"), *_agent_steps("reviewer"), ("reviewer", "verdict")]
STEPS = [
    *_agent_steps("researcher", ("tool_call", "tool_result")),
    *DRAFT_AND_REVIEW,
    *DRAFT_AND_REVIEW,
    ("crew", "crew_finished"),
]


def test_a_crew_researches_with_real_documents_revises_and_streams_its_steps(
    service: str, backend: ScriptedBackend
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    headers = {"X-Switchboard-Tenant": tenant}
    uploaded = httpx.post(
        f"{service}/documents",
        json={"text": MANUAL, "title": "Rail manual"},
        headers=headers,
        timeout=30,
    )
    assert uploaded.status_code == 200, uploaded.text
    _script_crew(backend)
    events = stream_turn(
        service, "Write a short report on signal lamp inspections.", headers=headers, route="crew"
    )
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["metadata", "route"] and events[1].data["route"] == "crew"
    assert kinds[-2:] == ["quality", "end"]
    assert _crew_steps(events) == STEPS

    # The tool call reached the retrieval tool and came back with the passage from Qdrant.
    crew_events = [e.data for e in events if e.kind == "crew"]
    call = next(e for e in crew_events if e["type"] == "tool_call")
    assert call["tool"] == "search_documents"
    assert call["args"] == {"query": "signal lamp inspection"}
    result = next(e for e in crew_events if e["type"] == "tool_result")
    assert "inspected every 90 days by a two-person crew" in result["output"]
    after_tool = [r for r in backend.requests if r.get("model") == "crew"][1]
    tool_message = after_tool["messages"][-1]
    assert tool_message["role"] == "tool" and "two-person crew" in tool_message["content"]

    # The reviewer's rejection caused a revision, with its changes in the writer's prompt.
    verdicts = [e for e in crew_events if e["type"] == "verdict"]
    assert [v["approved"] for v in verdicts] == [False, True]
    assert verdicts[0]["changes"] == "give the interval and cite the manual."
    revision_prompt = json.dumps([r for r in backend.requests if r.get("model") == "crew"][4])
    assert "give the interval and cite the manual." in revision_prompt
    assert "Lamps are checked now and then." in revision_prompt  # the previous draft

    # The writer's tokens stream as tokens: the first draft, a retry, then the final one.
    retry = kinds.index("retry")
    first = "".join(e.data["text"] for e in events[:retry] if e.kind == "token")
    final = "".join(e.data["text"] for e in events[retry:] if e.kind == "token")
    assert first == "Lamps are checked now and then."
    assert final == "Signal lamps are inspected every 90 days (Rail manual)."
    assert events[-1].data["output"]["answer"] == final


def test_the_research_crew_is_a_model_of_its_own(service: str, backend: ScriptedBackend) -> None:
    models = httpx.get(f"{service}/v1/models").json()["data"]
    assert "research-crew" in [m["id"] for m in models]
    _script_crew(backend)
    # No documents in this tenant: the search comes back empty and the crew goes on.
    body = {
        "model": "research-crew",
        "stream": True,
        "messages": [{"role": "user", "content": "Report on signal lamps."}],
    }
    with httpx.stream("POST", f"{service}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    content = "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in (json.loads(line[6:]) for line in lines[:-1])
        if chunk.get("choices")
    )
    # An OpenAI stream cannot take tokens back: only the approved draft is sent.
    assert content == "Signal lamps are inspected every 90 days (Rail manual)."
    assert backend.request_count(model="router") == 0  # the workflow never classifies


def test_the_client_going_away_stops_the_crew(service: str, backend: ScriptedBackend) -> None:
    crew = "crew"
    backend.enqueue(Reply(text="- A fact (manual)."), crew)
    slow_draft = Reply(tokens=[f"word{i} " for i in range(200)], gap=0.05)
    backend.enqueue(slow_draft, crew)
    backend.set_default(Reply(text="APPROVED"), crew)
    body = {"messages": [{"role": "user", "content": "A long report, please."}], "route": "crew"}
    with httpx.stream("POST", f"{service}/v1/chat/stream", json=body, timeout=30) as response:
        for event in iter_events(response):
            if event.kind == "token":  # the writer is streaming its draft: go away now
                break
    gone = time.monotonic()
    calls_when_gone = backend.request_count(model=crew)
    assert calls_when_gone == 2
    deadline = gone + 2
    while backend.active_streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.active_streams == 0, "the writer's call is still streaming"
    time.sleep(max(0.0, deadline - time.monotonic()))
    assert backend.request_count(model=crew) == calls_when_gone  # no reviewer, no revision


def test_a_crew_past_its_time_budget_ends_the_stream_with_an_error(
    backend: ScriptedBackend,
) -> None:
    settings = make_settings(backend_entry("p", backend), crew={"time_budget_s": 0.5})
    backend.set_default(Reply(text="notes", ttft=3), "crew")
    with running_service(settings) as url:
        events = stream_turn(url, "A report, please.", route="crew")
    assert events[-1].kind == "error"
    assert events[-1].data["code"] == "crew_timeout"
    assert [e.kind for e in events].count("end") == 0


def test_a_low_scored_direct_answer_escalates_once_to_the_crew(backend: ScriptedBackend) -> None:
    settings = make_settings(
        backend_entry("p", backend), crew={"escalate": True}, quality={"max_retries": 0}
    )
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.enqueue(Reply(text="Lamps? No idea."), model="generator")
    backend.enqueue(Reply(text='{"score": 1}'), model="judge")  # the direct answer
    backend.enqueue(Reply(text='{"score": 2}'), model="judge")  # the crew's: no second escalation
    backend.enqueue(Reply(text="- Lamps are inspected every 90 days."), "crew")
    backend.enqueue(Reply(text="Lamps are inspected every 90 days."), "crew")
    backend.enqueue(Reply(text="APPROVED"), "crew")
    thread = f"th-{uuid.uuid4().hex[:8]}"
    with running_service(settings) as url:
        events = stream_turn(url, "How often are lamps inspected?", thread_id=thread)
        state = httpx.get(f"{url}/threads/{thread}/state").json()["values"]
    qualities = [e.data for e in events if e.kind == "quality"]
    assert [(q["score"], q["escalate"]) for q in qualities] == [(0.0, True), (0.25, False)]
    retry = next(e.data for e in events if e.kind == "retry")
    assert retry["reason"] == "escalated to the crew"
    assert events[-1].kind == "end"
    assert events[-1].data["output"]["answer"] == "Lamps are inspected every 90 days."
    assert backend.request_count(model="crew") == 3
    # Only the crew's answer joined the thread's history.
    assert [m["content"] for m in state["messages"]] == [
        "How often are lamps inspected?",
        "Lamps are inspected every 90 days.",
    ]
    # Each crew call was bounded by the escalation's token budget (2048 over 5 calls).
    crew_calls = [r for r in backend.requests if r.get("model") == "crew"]
    assert {r["max_tokens"] for r in crew_calls} == {2048 // 5}


def test_a_failed_escalation_keeps_the_first_answer(backend: ScriptedBackend) -> None:
    settings = make_settings(
        backend_entry("p", backend),
        crew={"escalate": True, "escalation_time_budget_s": 0.5},
        quality={"max_retries": 0},
    )
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.enqueue(Reply(text="Every 90 days, I think."), model="generator")
    backend.enqueue(Reply(text='{"score": 2}'), model="judge")
    backend.set_default(Reply(text="notes", ttft=3), "crew")  # past the escalation budget
    thread = f"th-{uuid.uuid4().hex[:8]}"
    with running_service(settings) as url:
        events = stream_turn(url, "How often are lamps inspected?", thread_id=thread)
        state = httpx.get(f"{url}/threads/{thread}/state").json()["values"]
    kinds = [e.kind for e in events]
    assert "retry" not in kinds  # the client keeps the tokens it has
    warning = next(e.data for e in events if e.kind == "warning")
    assert "escalation to the crew failed" in warning["message"]
    assert "within 0.5 s" in warning["detail"]
    assert kinds[-1] == "end"
    assert events[-1].data["output"]["answer"] == "Every 90 days, I think."
    assert [m["content"] for m in state["messages"]][-1] == "Every 90 days, I think."
    assert backend.request_count(model="judge") == 1
