"""The native stream: `POST /v1/chat/stream` answers with every event of the run as SSE —
`metadata` at once, then route, tokens, quality score, and one `end` or `error`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import RunRequestDep, StreamSlotDep
from api.openapi import errors
from api.schemas import NativeRunRequest
from api.sse import sse_response
from api.streams import RunEvents
from api.turns import prepare_turn

router = APIRouter(prefix="/v1", tags=["native"])


@router.post(
    "/chat/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(404)},  # 404: workflow
)
async def chat_stream(
    body: NativeRunRequest,
    run_request: RunRequestDep,
    slot: StreamSlotDep,
) -> StreamingResponse:
    turn = await prepare_turn(
        run_request,
        body.workflow,
        body.messages,
        body,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        allow_retry=True,
    )
    headers = turn.headers
    await slot.take(run_request.caller)
    return sse_response(_frames(await turn.start(run_request.services)), headers)


async def _frames(run: RunEvents) -> AsyncIterator[bytes]:
    try:
        async for event_id, event in run.native():
            yield event.sse(event_id)
    finally:
        run.close()
