"""The OpenAI-compatible surface: `GET /v1/models`, `POST /v1/chat/completions`.

Streamed replies are exact `chat.completion.chunk` frames, one per backend token. The response
is held until the first token (or the end) so that a turn that fails before producing anything
gets a real HTTP error status; after that, a failure is sent as an OpenAI `error` frame, which the
official clients raise as an exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from api.deps import RunRequestDep, ServicesDep, StreamSlotDep, get_caller
from api.openapi import errors
from api.schemas import ChatCompletionRequest
from api.sse import sse_response
from api.streams import RunEvents
from api.turns import Turn, prepare_turn
from switchboard.events import Event, EventKind

router = APIRouter(prefix="/v1", tags=["openai"])

_STARTED = int(time.time())


@router.get("/models", dependencies=[Depends(get_caller)])  # a caller, though unread
async def list_models(services: ServicesDep) -> dict[str, Any]:
    """Each workflow is a model."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": _STARTED, "owned_by": "switchboard"}
            for name in services.workflows
        ],
    }


@router.post(
    "/chat/completions",
    response_model=None,
    # JSON, or with `stream` an SSE stream; before its first token a turn fails with its
    # own status: an unknown model, or the backends failing, timing out or refusing.
    responses={200: {"content": {"text/event-stream": {}}}, **errors(404, 502, 504)},
)
async def chat_completions(
    body: ChatCompletionRequest,
    run_request: RunRequestDep,
    slot: StreamSlotDep,
) -> Response:
    turn = await prepare_turn(
        run_request,
        body.model,
        body.messages,
        body,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        # Streamed tokens cannot be taken back, so a streamed turn is graded but not retried.
        allow_retry=not body.stream,
    )
    headers = turn.headers
    if body.stream:
        await slot.take(run_request.caller)
    run = await turn.start(run_request.services)
    if not body.stream:
        return await _complete(turn, run, body.model, headers)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    events = run.native()
    held: list[Event] = []
    try:
        async for _, event in events:
            if event.kind is EventKind.ERROR:
                run.close()
                return _error_response(event, headers)
            held.append(event)
            if event.kind in (EventKind.TOKEN, EventKind.END):
                break
    except BaseException:
        run.close()
        raise
    encoder = _ChunkEncoder(turn.run_id, body.model, include_usage)
    return sse_response(_chunks(encoder, held, events, run), headers)


async def _complete(turn: Turn, run: RunEvents, model: str, headers: dict[str, str]) -> Response:
    output: dict[str, Any] = {}
    try:
        async for _, event in run.native():
            if event.kind is EventKind.ERROR:
                return _error_response(event, headers)
            if event.kind is EventKind.END:
                output = event.data["output"]
    finally:
        run.close()
    usage = output.get("usage", {})
    return JSONResponse(
        {
            "id": f"chatcmpl-{turn.run_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": output.get("answer", "")},
                    "logprobs": None,
                    "finish_reason": output.get("finish_reason", "stop"),
                }
            ],
            "usage": _usage(usage),
        },
        headers=headers,
    )


class _ChunkEncoder:
    """Encodes a run's events as `chat.completion.chunk` frames. Every chunk shares its
    envelope, so the envelope is encoded once and a token costs one json.dumps of its text."""

    def __init__(self, run_id: str, model: str, include_usage: bool) -> None:
        self._id = f"chatcmpl-{run_id}"
        self._model = model
        self._created = int(time.time())
        self._include_usage = include_usage
        self._head = (
            f'data: {{"id":"{self._id}","object":"chat.completion.chunk",'
            f'"created":{self._created},"model":{json.dumps(model)},"choices":[{{"index":0,"delta":'
        ).encode()

    def opening(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + _OPEN_TAIL

    def encode(self, event: Event) -> bytes | None:
        kind = event.kind
        if kind is EventKind.TOKEN:
            return (
                self._head
                + b'{"content":'
                + json.dumps(event.data["text"]).encode()
                + b"}"
                + _OPEN_TAIL
            )
        if kind is EventKind.ERROR:
            return f"data: {json.dumps({'error': _envelope_fields(event)})}\n\n".encode()
        if kind is EventKind.END:
            return self._closing(event.data["output"])
        return None

    def _closing(self, output: dict[str, Any]) -> bytes:
        finish = json.dumps(output.get("finish_reason", "stop"))
        frame = self._head + f'{{}},"logprobs":null,"finish_reason":{finish}}}]}}\n\n'.encode()
        if self._include_usage:
            usage_chunk = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": _usage(output.get("usage", {})),
            }
            frame += f"data: {json.dumps(usage_chunk)}\n\n".encode()
        return frame + b"data: [DONE]\n\n"


_OPEN_TAIL = b',"logprobs":null,"finish_reason":null}]}\n\n'


async def _chunks(
    encoder: _ChunkEncoder,
    held: list[Event],
    events: AsyncIterator[tuple[str, Event]],
    run: RunEvents,
) -> AsyncIterator[bytes]:
    yield encoder.opening()
    try:
        for event in held:
            frame = encoder.encode(event)
            if frame:
                yield frame
        async for _, event in events:
            frame = encoder.encode(event)
            if frame:
                yield frame
    finally:
        run.close()


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("prompt_tokens", 0))
    completion = int(usage.get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _envelope_fields(event: Event) -> dict[str, Any]:
    return {k: event.data[k] for k in ("message", "type", "param", "code")}


def _error_response(event: Event, headers: dict[str, str]) -> Response:
    return JSONResponse(
        {"error": _envelope_fields(event)}, status_code=event.data["status"], headers=headers
    )
