"""Turning a chat request into a run of a workflow: validation against the limits, then the run's
input and context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from api.schemas import ChatMessageIn, SwitchboardOptions
from api.services import Services
from graphs import RouterContext, WorkflowSpec
from switchboard.errors import InvalidRequest, NotFound, PayloadTooLarge
from switchboard.runtime import RunInfo, RunStream, new_run, start_run


@dataclass(frozen=True, slots=True)
class Turn:
    spec: WorkflowSpec
    info: RunInfo
    input: dict[str, Any]
    context: RouterContext
    durability: str

    def start(self) -> RunStream:
        return start_run(self.spec.graph, self.info, self.input, self.context, self.durability)


async def prepare_turn(
    services: Services,
    tenant: str,
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
    settings = services.settings
    limits = settings.limits
    spec = services.workflows.get(workflow)
    if spec is None:
        known = ", ".join(sorted(services.workflows))
        raise NotFound(f"unknown model {workflow!r}; available: {known}", param="model")
    if not messages:
        raise InvalidRequest("messages must not be empty", param="messages")
    if len(messages) > limits.max_messages:
        raise PayloadTooLarge(
            f"{len(messages)} messages; at most {limits.max_messages} are accepted",
            param="messages",
        )
    converted = []
    for index, message in enumerate(messages):
        backend_message = message.to_backend()
        if len(backend_message["content"]) > limits.max_message_chars:
            raise PayloadTooLarge(
                f"message {index} has {len(backend_message['content'])} characters; "
                f"at most {limits.max_message_chars} are accepted",
                param=f"messages.{index}.content",
            )
        converted.append(backend_message)
    if not any(m["role"] == "user" and m["content"].strip() for m in converted):
        raise InvalidRequest("messages must include a non-empty user message", param="messages")
    if max_tokens is not None and max_tokens > limits.max_tokens:
        raise InvalidRequest(
            f"max_tokens is {max_tokens}; at most {limits.max_tokens}", param="max_tokens"
        )
    quality = settings.quality
    if options.quality_check is not None:
        quality = quality.model_copy(update={"enabled": options.quality_check})
    info = new_run(spec.name, options.thread_id)
    memory = services.memory
    await memory.ensure_ready()
    owner = await memory.threads.claim(info.thread_id, tenant, options.user, spec.name)
    if owner.tenant != tenant:
        # Another tenant's thread: answered as if it did not exist, so ids do not leak.
        raise NotFound(f"thread {info.thread_id!r} not found", param="thread_id")
    # Opened in the background at start-up: only the first turns wait for it (about a second).
    retrieval = await services.retrieval.wait()
    context = RouterContext(
        llm=services.llm,
        router=settings.router,
        quality=quality,
        max_tokens=max_tokens or settings.router.max_tokens,
        temperature=temperature,
        route=spec.route or options.route,
        allow_retry=allow_retry,
        retriever=retrieval.retriever if retrieval else None,
        tenant=tenant,
        context_tokens=settings.retrieval.context_tokens,
        user=options.user,
        thread_id=info.thread_id,
        memory=services.memory.long_term,
        memory_settings=settings.memory,
        background=services.background,
        crew=services.crew,
    )
    return Turn(
        spec=spec,
        info=info,
        input={"messages": converted},
        context=context,
        durability=settings.redis.durability,
    )
