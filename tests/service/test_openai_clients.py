"""The official `openai` client, sync and async, streamed and not, against the service."""

from collections.abc import Callable

from openai import AsyncOpenAI, OpenAI

from tests.backends import Reply, ScriptedBackend


def _script(backend: ScriptedBackend, answer: str, usage: bool = True) -> None:
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(text=answer, usage=usage), model="generator")
    backend.set_default(Reply(text='{"score": 5}'), model="judge")


def test_models_lists_each_workflow(service: str, openai_client: Callable[..., OpenAI]) -> None:
    client = openai_client(service)
    assert [m.id for m in client.models.list()] == ["switchboard", "research-crew"]


def test_sync_non_streamed(
    service: str, backend: ScriptedBackend, openai_client: Callable[..., OpenAI]
) -> None:
    _script(backend, "Paris is the capital of France.")
    client = openai_client(service)
    reply = client.chat.completions.create(
        model="switchboard", messages=[{"role": "user", "content": "Capital of France?"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "Paris is the capital of France."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 6


def test_sync_streamed_one_chunk_per_token(
    service: str, backend: ScriptedBackend, openai_client: Callable[..., OpenAI]
) -> None:
    _script(backend, "One two three four five")
    client = openai_client(service)
    stream = client.chat.completions.create(
        model="switchboard",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    contents = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert contents == ["One", " two", " three", " four", " five"]
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert len({c.id for c in chunks}) == 1


def test_usage_is_counted_when_the_backend_omits_it(
    service: str, backend: ScriptedBackend, openai_client: Callable[..., OpenAI]
) -> None:
    _script(backend, "alpha beta gamma", usage=False)
    client = openai_client(service)
    stream = client.chat.completions.create(
        model="switchboard",
        messages=[{"role": "user", "content": "Greek letters please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1
    assert usage[0].completion_tokens == 3
    assert usage[0].prompt_tokens > 0


async def test_async_streamed_and_not(service: str, backend: ScriptedBackend) -> None:
    _script(backend, "Async works fine")
    async with AsyncOpenAI(base_url=f"{service}/v1", api_key="unused") as client:
        reply = await client.chat.completions.create(
            model="switchboard", messages=[{"role": "user", "content": "Does async work?"}]
        )
        assert reply.choices[0].message.content == "Async works fine"
        stream = await client.chat.completions.create(
            model="switchboard",
            messages=[{"role": "user", "content": "Does async work?"}],
            stream=True,
        )
        pieces = [
            c.choices[0].delta.content
            async for c in stream
            if c.choices and c.choices[0].delta.content
        ]
    assert pieces == ["Async", " works", " fine"]
