"""Rate limits per API key hold across replicas: two API processes (and a worker) share one Redis,
and a key's requests, tokens and open streams are counted once across both; over a limit is a
429 with `Retry-After`, and other keys are not slowed."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from memory.api_keys import ApiKeyStore
from tests.backends import Reply, ScriptedBackend
from tests.service.cluster import cluster

KEYS_ON = {"SWITCHBOARD_AUTH__MODE": "keys"}
TURN: dict[str, Any] = {
    "model": "switchboard",
    "messages": [{"role": "user", "content": "Count to five."}],
    "switchboard": {"route": "direct", "quality_check": False},
}


def _key(redis_url: str) -> tuple[str, dict[str, str]]:
    """A fresh key of a fresh tenant: its id and its headers."""

    async def make() -> str:
        client = AsyncRedis.from_url(redis_url)
        try:
            _, token = await ApiKeyStore(client).create(f"rl-{uuid.uuid4().hex[:8]}", "user")
        finally:
            await client.aclose()
        return token

    token = asyncio.run(make())
    return token.split("_")[1], {"Authorization": f"Bearer {token}"}


def _retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["type"] == "rate_limit_error"
    return int(response.headers["retry-after"])


def test_requests_per_minute_are_counted_once_across_two_api_processes(
    backend: ScriptedBackend, redis_url: str, tmp_path: Path
) -> None:
    env = {**KEYS_ON, "SWITCHBOARD_RATE_LIMITS__REQUESTS_PER_MINUTE": "10"}
    with cluster(backend, redis_url, tmp_path, env) as nodes:
        first, second = nodes.api(), nodes.api()
        _, headers = _key(redis_url)
        statuses: list[int] = []
        refused: list[httpx.Response] = []
        for n in range(14):
            url = first if n % 2 == 0 else second
            response = httpx.post(f"{url}/assistants/search", json={}, headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused.append(response)
        # A minute's budget at once, then one request every 6 s: the 11th is refused, on
        # whichever process it reaches.
        assert statuses == [200] * 10 + [429] * 4
        waits = [int(r.headers["retry-after"]) for r in refused]
        assert all(1 <= wait <= 6 for wait in waits), waits
        assert "requests a minute" in refused[0].json()["detail"]
        # Another key has its own budget.
        _, others = _key(redis_url)
        assert httpx.post(f"{second}/assistants/search", json={}, headers=others).is_success


def test_tokens_per_minute_charged_by_the_worker_hold_on_the_other_api(
    backend: ScriptedBackend, redis_url: str, tmp_path: Path
) -> None:
    backend.set_default(Reply(text=" ".join(["word"] * 40)), model="generator")
    env = {**KEYS_ON, "SWITCHBOARD_RATE_LIMITS__TOKENS_PER_MINUTE": "30"}
    with cluster(backend, redis_url, tmp_path, env) as nodes:
        first, second = nodes.api(), nodes.api()
        nodes.worker()
        key_id, headers = _key(redis_url)
        answered = httpx.post(
            f"{first}/v1/chat/completions", json=TURN, headers=headers, timeout=30
        )
        assert answered.status_code == 200, answered.text
        # 40 tokens out alone are over the budget of 30: the next run must wait.
        assert answered.json()["usage"]["completion_tokens"] == 40
        bucket = f"ratelimit:tok:key:{key_id}"
        with Redis.from_url(redis_url) as client:
            deadline = time.monotonic() + 10
            while not client.exists(bucket):  # charged when the run's execution ends
                assert time.monotonic() < deadline, "the run's tokens were never charged"
                time.sleep(0.05)
        refused = httpx.post(f"{second}/v1/chat/completions", json=TURN, headers=headers)
        assert _retry_after(refused) >= 1
        assert "tokens a minute" in refused.json()["error"]["message"]
        # Reading is not running: still allowed while the token budget is overdrawn.
        assert httpx.post(f"{second}/threads/search", json={}, headers=headers).is_success
        _, others = _key(redis_url)
        other = httpx.post(f"{second}/v1/chat/completions", json=TURN, headers=others, timeout=30)
        assert other.status_code == 200


def test_open_streams_per_key_are_capped_across_two_api_processes(
    backend: ScriptedBackend, redis_url: str, tmp_path: Path
) -> None:
    backend.set_default(
        Reply(text=" ".join(f"t{i}" for i in range(10)), gap=0.1), model="generator"
    )
    env = {**KEYS_ON, "SWITCHBOARD_RATE_LIMITS__CONCURRENT_STREAMS": "1"}
    body = {**TURN, "stream": True}
    with cluster(backend, redis_url, tmp_path, env) as nodes:
        first, second = nodes.api(), nodes.api()
        nodes.worker()
        _, headers = _key(redis_url)
        with httpx.stream(
            "POST", f"{first}/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as open_stream:
            assert open_stream.status_code == 200
            lines = open_stream.iter_lines()
            assert next(lines).startswith("data: ")  # streaming, its slot held
            refused = httpx.post(f"{second}/v1/chat/completions", json=body, headers=headers)
            assert _retry_after(refused) == 1
            assert "open streams" in refused.json()["error"]["message"]
            # Not streaming: not a stream slot.
            plain = httpx.post(f"{second}/v1/chat/completions", json=TURN, headers=headers)
            assert plain.status_code == 200, plain.text
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        # The slot is given back when the stream ends.
        deadline = time.monotonic() + 5
        while True:
            again = httpx.post(f"{second}/v1/chat/completions", json=body, headers=headers)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert again.status_code == 200, again.text
