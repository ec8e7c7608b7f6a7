"""Conversations kept in Redis by thread (LangGraph's Redis checkpointer on the embedded
valkey + RedisJSON + RediSearch server)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import stream_turn

QUIET = {"route": "direct", "quality_check": False}


def _generator_messages(backend: ScriptedBackend) -> list[dict[str, str]]:
    request = next(r for r in reversed(backend.requests) if r.get("model") == "generator")
    return [{"role": m["role"], "content": m["content"]} for m in request["messages"]]


def test_a_thread_continues_after_the_service_restarts(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    settings = make_settings(backend_entry("primary", backend), server={"data_dir": str(tmp_path)})
    backend.set_default(Reply(text="Nice to meet you, Ada."), model="generator")
    with running_service(settings) as url:
        first = stream_turn(url, "My name is Ada.", thread_id="thread-1", **QUIET)
        assert first[-1].kind == "end"
        assert httpx.get(f"{url}/readyz").json()["redis"]["status"] == "up"
    backend.set_default(Reply(text="Your name is Ada."), model="generator")
    with running_service(settings) as url:
        stream_turn(url, "What is my name?", thread_id="thread-1", **QUIET)
    history = _generator_messages(backend)
    assert history[1:] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]


def test_threads_do_not_share_history(service: str, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="Noted."), model="generator")
    stream_turn(service, "Remember the number 7.", thread_id="a", **QUIET)
    stream_turn(service, "Which number?", thread_id="b", **QUIET)
    assert [m["content"] for m in _generator_messages(backend)[1:]] == ["Which number?"]
    stream_turn(service, "Which number?", thread_id="a", **QUIET)
    assert [m["content"] for m in _generator_messages(backend)[1:]] == [
        "Remember the number 7.",
        "Noted.",
        "Which number?",
    ]


def test_a_retried_draft_does_not_enter_the_history(service: str, backend: ScriptedBackend) -> None:
    backend.enqueue(Reply(text="draft"), model="generator")
    backend.enqueue(Reply(text="final"), model="generator")
    backend.enqueue(Reply(text='{"score": 1}'), model="judge")
    backend.enqueue(Reply(text='{"score": 5}'), model="judge")
    stream_turn(service, "Explain", thread_id="q", route="direct")
    backend.set_default(Reply(text="next"), model="generator")
    stream_turn(service, "And then?", thread_id="q", **QUIET)
    assert [m["content"] for m in _generator_messages(backend)[1:]] == [
        "Explain",
        "final",
        "And then?",
    ]
