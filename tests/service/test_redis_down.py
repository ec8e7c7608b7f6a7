"""Redis down: chat fails clearly (memory is required), readiness is false, and the service
recovers when Redis returns, without a restart — against a real Redis stopped and restarted."""

from __future__ import annotations

from pathlib import Path

import httpx

from memory.redis_server import EmbeddedRedis
from switchboard.processes import free_port
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service
from tests.sse import stream_turn

QUIET = {"route": "direct", "quality_check": False}


def _turn(url: str, text: str, thread: str) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], "thread_id": thread, **QUIET}
    return httpx.post(f"{url}/v1/chat/stream", json=body, timeout=30)


async def test_redis_stopped_and_restarted(tmp_path: Path, backend: ScriptedBackend) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", free_port())
    await redis.start()
    settings = make_settings(backend_entry("primary", backend), redis={"url": redis.url})
    backend.set_default(Reply(text="Hello Ada."), model="generator")
    try:
        with running_service(settings) as url:
            assert stream_turn(url, "I am Ada.", thread_id="t", **QUIET)[-1].kind == "end"
            await redis.stop()

            refused = _turn(url, "Still there?", "t")
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            error = refused.json()["error"]
            # The turn's thread claim and its queueing are one round trip to Redis.
            assert error["code"] == "queue_unavailable"
            assert "Redis" in error["message"]
            # The LangGraph API says the same in its own shape.
            run = httpx.post(
                f"{url}/threads/t/runs",
                json={
                    "assistant_id": "switchboard",
                    "input": {"messages": [{"role": "user", "content": "x"}]},
                },
                timeout=30,
            )
            assert run.status_code == 503 and run.headers["Retry-After"] == "1"
            assert run.json()["code"] == "queue_unavailable" and "Redis" in run.json()["detail"]
            ready = httpx.get(f"{url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["redis"]["status"] == "down"

            await redis.start()  # same port, same append-only file
            assert httpx.get(f"{url}/readyz").json()["redis"]["status"] == "up"
            backend.set_default(Reply(text="You are Ada."), model="generator")
            events = stream_turn(url, "Who am I?", thread_id="t", **QUIET)
            assert events[-1].kind == "end"
            prompt = next(r for r in reversed(backend.requests) if r.get("model") == "generator")
            contents = [m["content"] for m in prompt["messages"]]
            assert contents[1:] == ["I am Ada.", "Hello Ada.", "Who am I?"]  # nothing lost
    finally:
        await redis.stop()


async def test_service_starts_without_redis_and_recovers_when_it_comes(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    port = free_port()
    redis = EmbeddedRedis(tmp_path / "redis", port)
    settings = make_settings(backend_entry("primary", backend), redis={"url": redis.url})
    backend.set_default(Reply(text="Hi."), model="generator")
    try:
        with running_service(settings) as url:
            assert httpx.get(f"{url}/healthz").status_code == 200
            ready = httpx.get(f"{url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["redis"]["status"] == "down"
            refused = _turn(url, "Hello?", "t")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "memory_unavailable"

            await redis.start()
            assert httpx.get(f"{url}/readyz").status_code == 200
            assert stream_turn(url, "Hello?", thread_id="t", **QUIET)[-1].kind == "end"
    finally:
        await redis.stop()
