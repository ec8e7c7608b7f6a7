"""The whole path against the real SmolLM2-135M model behind llama.cpp's server, started by the
service itself exactly as the embedded default does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from switchboard.settings import Settings
from tests.service_runner import running_service
from tests.sse import stream_turn

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("switchboard")
    settings = Settings(
        server={"data_dir": data_dir},  # type: ignore[arg-type]
        local={"mode": "auto"},  # type: ignore[arg-type]
        llm={"backends": []},  # type: ignore[arg-type]
        crew={"max_tokens": 128},  # type: ignore[arg-type]  # short crew replies on a CPU
        auth={"mode": "off"},  # type: ignore[arg-type]
    )
    assert settings.wants_local_backend
    with running_service(settings) as url:
        yield url


def test_native_stream_answers_with_the_real_model(local_service: str) -> None:
    # Generous waits: a 2-core machine shared with other work can slow the model down a lot.
    events = stream_turn(
        local_service, "What is the capital of France?", timeout=180, max_tokens=48
    )
    kinds = [e.kind for e in events]
    assert kinds[0] == "metadata" and kinds[-1] == "end"
    route = events[1].data
    # The router model's answer is grammar-constrained, so it parses.
    assert route["reason"] == "classified by the router model", route
    tokens = [e.data["text"] for e in events if e.kind == "token"]
    assert len(tokens) > 3
    output = events[-1].data["output"]
    assert output["answer"] == "".join(tokens) and output["answer"].strip()
    quality = next(e.data for e in events if e.kind == "quality")
    assert quality["score"] is not None, quality
    assert output["usage"]["completion_tokens"] == len(tokens)


def test_openai_client_streams_a_real_answer(
    local_service: str, openai_client: Callable[..., OpenAI]
) -> None:
    client = openai_client(local_service, timeout=180)
    stream = client.chat.completions.create(
        model="switchboard",
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    reply = client.chat.completions.create(
        model="switchboard", messages=[{"role": "user", "content": "Say hello."}], max_tokens=24
    )
    assert reply.choices[0].message.content


def test_the_bundled_server_stops_with_the_service(tmp_path: Path) -> None:
    import httpx

    settings = Settings(server={"data_dir": tmp_path}, local={"mode": "on"})  # type: ignore[arg-type]
    with running_service(settings) as url:
        ready = httpx.get(f"{url}/readyz").json()
        local_url = ready["backends"]["local-llamacpp"]["url"]
        assert ready["backends"]["local-llamacpp"]["status"] == "up"
        assert httpx.get(f"{local_url}/models").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{local_url}/models", timeout=2)


def test_a_rag_turn_with_the_real_model(local_service: str) -> None:
    import httpx

    text = (
        "# Kestrel Ridge funicular\n\nThe second car of the Kestrel Ridge funicular is named Wren. "
        "It was rebuilt in 2019 by the Holloway Works in the town of Brisk.\n"
    )
    response = httpx.post(
        f"{local_service}/documents", json={"text": text, "title": "Funicular"}, timeout=60
    )
    assert response.status_code == 200, response.text
    events = stream_turn(
        local_service,
        "Who rebuilt the funicular car Wren?",
        timeout=180,
        route="rag",
        max_tokens=48,
    )
    kinds = [e.kind for e in events]
    assert kinds.index("sources") < kinds.index("token")
    sources = next(e.data for e in events if e.kind == "sources")["sources"]
    assert any("Holloway Works" in s["text"] for s in sources)
    assert events[-1].kind == "end" and events[-1].data["output"]["answer"].strip()


def test_the_crew_completes_with_the_real_model(local_service: str) -> None:
    """The research crew end to end on SmolLM2 (the text's quality is not judged)."""
    events = stream_turn(
        local_service, "Write a short report about the colour blue.", timeout=300, route="crew"
    )
    kinds = [e.kind for e in events]
    assert kinds[-1] == "end", events[-1].data
    assert events[1].data["route"] == "crew"
    agents = {e.data["agent"] for e in events if e.kind == "crew"}
    assert {"researcher", "writer", "reviewer"} <= agents
    verdicts = [e.data for e in events if e.kind == "crew" and e.data["type"] == "verdict"]
    assert verdicts  # the reviewer answered (approving or not)
    assert events[-1].data["output"]["answer"].strip()
