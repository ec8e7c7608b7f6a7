"""Turning a chat request into a run of a workflow: validation against the limits, then the run's
input and context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from api.deps import RunRequest
from api.limits import check_max_tokens, check_messages
from api.schemas import ChatMessageIn, SwitchboardOptions
from api.services import Services
from api.streams import RunEvents
from switchboard.errors import InvalidRequest, NotFound
from switchboard.runs import OwnedBy, RunRecord, new_run_id


@dataclass(frozen=True, slots=True)
class Turn:
    record: RunRecord
    owner: OwnedBy  # the thread's claim, sent with the run's queueing

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def thread_id(self) -> str:
        return self.record.thread_id

    @property
    def headers(self) -> dict[str, str]:
        """The run's ids, sent with its response."""
        return {
            "X-Run-Id": self.run_id,
            "X-Thread-Id": self.thread_id,
            "X-Trace-Id": self.record.trace_id,
        }

    async def start(self, services: Services) -> RunEvents:
        """Queue the run for a worker and follow its events; closing them cancels the run
        (a chat client that goes away does not want the rest)."""
        await services.submit(self.record, owner=self.owner)
        return RunEvents(services, self.record.run_id, cancel_on_close=True)


async def prepare_turn(
    run_request: RunRequest,
    workflow: str,
    messages: Sequence[ChatMessageIn],
    options: SwitchboardOptions,
    *,
    max_tokens: int | None,
    temperature: float | None,
    allow_retry: bool,
) -> Turn:
    """Validate a turn, claim its thread for the tenant, and build its run; raise
    `InvalidRequest`/`NotFound`/`PayloadTooLarge`, or `MemoryUnavailable` when Redis is down."""
    services, caller, trace = run_request.services, run_request.caller, run_request.trace
    tenant = caller.tenant
    settings = services.settings
    limits = settings.limits
    spec = services.workflows.get(workflow)
    if spec is None:
        known = ", ".join(sorted(services.workflows))
        raise NotFound(f"unknown model {workflow!r}; available: {known}", param="model")
    if not messages:
        raise InvalidRequest("messages must not be empty", param="messages")
    converted = [message.to_backend() for message in messages]
    check_messages([m["content"] for m in converted], limits)
    if not any(m["role"] == "user" and m["content"].strip() for m in converted):
        raise InvalidRequest("messages must include a non-empty user message", param="messages")
    check_max_tokens(max_tokens, limits)
    thread_id = options.thread_id or new_run_id()
    memory = services.memory
    await memory.ensure_ready()
    # Another tenant's thread is answered as if it did not exist (`ThreadNotFound` from the
    # queueing script), so ids do not leak.
    owner = memory.threads.owned_by(thread_id, tenant, options.user, spec.name)
    return Turn(
        RunRecord(
            run_id=new_run_id(),
            thread_id=thread_id,
            assistant_id=spec.name,
            tenant=tenant,
            rate_subject=caller.subject,
            kind="chat",
            trace_id=trace.trace_id,
            parent_span_id=trace.parent_span_id,
            input={"messages": converted},
            options={
                "route": options.route,
                "quality_check": options.quality_check,
                "user": options.user,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "allow_retry": allow_retry,
            },
        ),
        owner,
    )
