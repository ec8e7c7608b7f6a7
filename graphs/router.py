"""The router graph: recall → classify → (rag | direct | crew) → generate → check_quality →
remember.

`recall` reads the user's long-term memories (when the turn names a user) for `generate`'s
prompt; `remember` asks the extractor model, bounded, what the user's message says about them
that is worth keeping, and stores it. Neither can fail a turn: memory is best effort once the
conversation itself (the checkpointer) has been read.

`classify` asks the router model for a route with a constrained (JSON-schema) answer and falls
back to `direct` on anything it cannot use. Only the routes in the run's `routes` can be taken:
`rag` when retrieval is set up, `crew` when its issue lands. `check_quality` grades the answer
with the judge model and, on a low score, sends it back to `generate` once.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, TypeVar, cast, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypedDict  # pydantic reads it (assistant schemas) on 3.11

from agents.crew import CrewRunner
from graphs import prompts
from memory.long_term import LongTermMemory
from memory.retrieval import Retriever
from memory.store import SearchFilter
from switchboard import prompt_data
from switchboard.background import BackgroundJobs, JobOwner
from switchboard.errors import BackendError, SwitchboardError
from switchboard.events import Event, EventKind, token
from switchboard.llm import LLMPool, Message
from switchboard.llm.tokens import estimate_tokens
from switchboard.settings import MemorySettings, QualitySettings, Role, RouterSettings
from switchboard.tracing import current as current_tracing
from tools.retrieval import SearchDocumentsTool

log = logging.getLogger(__name__)

Route = Literal["rag", "direct", "crew"]
ALL_ROUTES: tuple[Route, ...] = get_args(Route)
_CLASSIFIER_INPUT_CHARS = 2000


class RouterInput(TypedDict):
    # The turn's new messages; with a checkpointer they are appended to the thread's history.
    messages: Annotated[list[Message], operator.add]


class RouterOutput(TypedDict, total=False):
    route: Route
    answer: str
    quality: float | None
    attempts: int
    usage: dict[str, int | bool]
    finish_reason: str
    sources: list[dict[str, Any]]
    citations: list[int]


class RouterState(TypedDict):
    messages: Annotated[list[Message], operator.add]
    route: NotRequired[Route]
    prompt: NotRequired[list[Message]]
    answer: NotRequired[str]
    quality: NotRequired[float | None]
    attempts: NotRequired[int]
    usage: NotRequired[dict[str, int | bool]]
    finish_reason: NotRequired[str]
    sources: NotRequired[list[dict[str, Any]]]
    citations: NotRequired[list[int]]
    memories: NotRequired[list[str]]
    escalated: NotRequired[bool]  # this turn's low-scored answer was handed to the crew
    escalation_failed: NotRequired[bool]  # ... and the crew failed: the first answer stands


@dataclass(frozen=True, slots=True)
class RouterContext:
    """What a run of the router graph needs besides its input: the models, the settings, and
    the request's own choices."""

    llm: LLMPool
    router: RouterSettings
    quality: QualitySettings
    max_tokens: int
    temperature: float | None = None
    route: Route | None = None  # pinned by the request: skip classification
    allow_retry: bool = True  # False when tokens already sent cannot be taken back
    retriever: Retriever | None = None  # None: the rag route is not available
    tenant: str = "default"
    context_tokens: int = 1200
    user: str | None = None  # long-term memory is per user; none: no memory
    thread_id: str | None = None
    memory: LongTermMemory | None = None
    memory_settings: MemorySettings = field(default_factory=MemorySettings)
    background: BackgroundJobs | None = None  # None: remember before the run ends
    crew: CrewRunner | None = None  # None: the crew route is not available

    @property
    def routes(self) -> tuple[Route, ...]:
        routes: tuple[Route, ...] = ("rag", "direct") if self.retriever is not None else ("direct",)
        return (*routes, "crew") if self.crew is not None else routes


async def recall(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """The user's memories most related to this message (none without a user or on failure)."""
    ctx = runtime.context
    if ctx.memory is None or ctx.user is None:
        return {"memories": []}
    try:
        found = await ctx.memory.recall(
            ctx.tenant,
            ctx.user,
            _last_user_text(state["messages"]),
            ctx.memory_settings.recall_limit,
        )
    except Exception as exc:  # the store's own errors vary (Redis, RedisVL); never fail a turn
        log.warning("recall failed: %s", exc)
        get_stream_writer()(Event(EventKind.WARNING, {"message": "memories unavailable"}))
        return {"memories": []}
    return {"memories": [m.text for m in found]}


async def classify(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    write = get_stream_writer()
    requested: Route | None
    if ctx.route is not None:
        requested, reason = ctx.route, "pinned by the request"
    else:
        requested, reason = await _ask_router(ctx, _last_user_text(state["messages"]))
    route: Route = requested if requested in ctx.routes else "direct"
    if requested != route:
        reason = f"{reason}; {requested!r} is not available, using direct"
    write(Event(EventKind.ROUTE, {"route": route, "requested": requested, "reason": reason}))
    return {"route": route, "attempts": 0, "escalated": False, "escalation_failed": False}


async def _ask_router(ctx: RouterContext, question: str) -> tuple[Route | None, str]:
    text = await _structured_answer(
        ctx,
        Role.ROUTER,
        prompts.CLASSIFIER,
        question[:_CLASSIFIER_INPUT_CHARS],
        field="route",
        values=list(ALL_ROUTES),
        max_tokens=ctx.router.classifier_max_tokens,
    )
    if isinstance(text, BackendError):
        return None, f"router model failed ({text.code})"
    route = parse_route(text)
    if route is None:
        return None, f"unparsable router answer {text[:60]!r}"
    return route, "classified by the router model"


async def _structured_answer(
    ctx: RouterContext,
    role: Role,
    system: str,
    user: str,
    *,
    field: str,
    values: Sequence[str] | Sequence[int],
    max_tokens: int,
) -> str | BackendError:
    """A model's answer constrained to the JSON object `{field: one of values}` (its raw text,
    which the caller parses defensively), or the backend failure."""
    schema = {
        "type": "object",
        "properties": {
            field: {
                "type": "string" if isinstance(values[0], str) else "integer",
                "enum": list(values),
            }
        },
        "required": [field],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": field, "strict": True, "schema": schema},
    }
    try:
        completion = await ctx.llm.complete(
            role,
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=max_tokens,
            temperature=0,
            response_format=response_format,
        )
    except BackendError as exc:
        return exc
    return completion.text


def parse_route(text: str) -> Route | None:
    """The route named by a router model's answer: a JSON object with `route`, or a bare route
    name; None for anything else."""
    candidate = _answer_value(text, "route")
    if isinstance(candidate, str) and candidate.strip().lower() in ALL_ROUTES:
        return cast(Route, candidate.strip().lower())
    return None


def direct(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """The direct route: the conversation itself, under the service's system prompt unless the
    client brought its own."""
    messages = state["messages"]
    if messages and messages[0].get("role") == "system":
        return {"prompt": messages}
    system: Message = {"role": "system", "content": runtime.context.router.system_prompt}
    return {"prompt": [system, *messages]}


async def rag(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """The rag route: retrieve, stream the sources, and put them in the prompt, numbered, within
    the context budget. A store or embedder failure degrades to an answer that says so."""
    ctx = runtime.context
    write = get_stream_writer()
    assert ctx.retriever is not None, "rag is routed to only when retrieval is set up"
    try:
        found = await ctx.retriever.search(
            _last_user_text(state["messages"]), SearchFilter(tenant=ctx.tenant)
        )
    except SwitchboardError as exc:
        write(Event(EventKind.SOURCES, {"sources": [], "degraded": exc.message}))
        note = prompts.RAG_UNAVAILABLE.format(reason=exc.code)
        return {"prompt": [{"role": "system", "content": note}, *state["messages"]], "sources": []}
    if found.warning is not None:
        write(
            Event(
                EventKind.WARNING,
                {
                    "message": "knowledge graph unavailable; sources from vectors only",
                    "detail": found.warning,
                },
            )
        )
    sources = _within_budget([s.public() for s in found.sources], ctx.context_tokens)
    for number, source in enumerate(sources, start=1):
        source["number"] = number
    facts = [f.text() for f in found.facts]
    write(Event(EventKind.SOURCES, {"sources": sources, "facts": facts}))
    conversation = [m for m in state["messages"] if m.get("role") != "system"]
    return {"prompt": rag_prompt(conversation, sources, facts), "sources": sources}


def _within_budget(sources: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    used = 0
    for source in sources:
        cost = estimate_tokens(source["text"])
        if kept and used + cost > budget:
            break
        kept.append(source)
        used += cost
    return kept


def rag_prompt(
    conversation: Sequence[Message], sources: Sequence[dict[str, Any]], facts: Sequence[str]
) -> list[Message]:
    """The rag route's prompt: the instructions alone in the system message; the numbered
    sources and the graph's facts as quoted data blocks (`switchboard.prompt_data`) in the last
    user message, before the question. Nothing retrieved reaches the system message, and
    nothing in it can close its block. The thread's history keeps the user's own words."""
    documents = prompt_data.blocks(
        "documents",
        (
            prompt_data.block(
                "document",
                source["text"],
                {
                    "id": source["number"],
                    "title": source["title"],
                    "section": source.get("section"),
                },
            )
            for source in sources
        ),
    )
    listed = prompt_data.block("facts", "\n".join(f"- {f}" for f in facts)) + "\n" if facts else ""
    messages = list(conversation)
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    question = str(messages[last].get("content") or "") if last is not None else ""
    context = prompts.RAG_CONTEXT.format(documents=documents, facts=listed, question=question)
    if last is None:
        messages.append({"role": "user", "content": context})
    else:
        messages[last] = {**messages[last], "content": context}
    return [{"role": "system", "content": prompts.RAG}, *messages]


def cited_numbers(answer: str, count: int) -> list[int]:
    """The source numbers an answer cites ([n] markers), in order of first use, within 1..count."""
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= count and number not in seen:
            seen.append(number)
    return seen


_CITATION = re.compile(r"\[(\d{1,3})\]")


async def generate(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    write = get_stream_writer()
    attempts = state.get("attempts", 0) + 1
    prompt = _with_memories(state["prompt"], state.get("memories", []))
    if attempts > 1:
        write(Event(EventKind.RETRY, {"attempt": attempts, "reason": "low quality score"}))
        prompt = [*prompt, {"role": "system", "content": prompts.RETRY_HINT}]
    params: dict[str, Any] = {"max_tokens": ctx.max_tokens}
    if ctx.temperature is not None:
        params["temperature"] = ctx.temperature
    stream = ctx.llm.stream(Role.GENERATOR, prompt, **params)
    pieces: list[str] = []
    async for piece in stream:
        pieces.append(piece)
        write(token(piece))
    usage = stream.usage
    answer = "".join(pieces)
    return {
        "answer": answer,
        "citations": cited_numbers(answer, len(state.get("sources", []))),
        "attempts": attempts,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "estimated": usage.estimated,
        },
        "finish_reason": stream.finish_reason,
    }


def _with_memories(prompt: list[Message], memories: list[str]) -> list[Message]:
    if not memories:
        return prompt
    note: Message = {
        "role": "system",
        "content": prompts.MEMORIES.format(facts="\n".join(f"- {m}" for m in memories)),
    }
    # After the leading system message (the instructions), before the conversation.
    split = 1 if prompt and prompt[0].get("role") == "system" else 0
    return [*prompt[:split], note, *prompt[split:]]


async def check_quality(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    # The answer joins the thread's history once it is final (not when it is to be retried or
    # handed to the crew).
    final = {"role": "assistant", "content": state["answer"]}
    if not ctx.quality.enabled:
        return {"quality": None, "messages": [final]}
    score, detail = await _judge(ctx, _last_user_text(state["messages"]), state["answer"])
    step = _after_score(ctx, state, score)
    get_stream_writer()(
        Event(
            EventKind.QUALITY,
            {
                "score": score,
                "detail": detail,
                "attempt": state["attempts"],
                "retry": step == "generate",
                "escalate": step == "crew",
            },
        )
    )
    return {"quality": score} if step != "remember" else {"quality": score, "messages": [final]}


def _after_score(
    ctx: RouterContext, state: RouterState, score: float | None
) -> Literal["generate", "crew", "remember"]:
    """What follows a scored answer: a retry of `generate`, else (once, when configured) the
    crew for a direct or rag answer still scored low, else the end of the turn."""
    if state.get("route") == "crew" or state.get("escalated"):
        return "remember"  # the crew's reviewer is its own quality loop
    if _wants_retry(ctx, score, state["attempts"]):
        return "generate"
    if (
        ctx.crew is not None
        and ctx.crew.settings.escalate
        and ctx.allow_retry  # the low answer's tokens must be taken back
        and score is not None
        and score < ctx.quality.threshold
    ):
        return "crew"
    return "remember"


async def crew(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """The crew route: the research crew writes the answer (its reviewer is its own quality
    loop; `check_quality` still scores the result, but never sends it back).

    Also the one escalation of a direct or rag answer scored low, within the escalation
    budgets. Its report is held until it is final: only then does a `retry` event tell the
    client to discard the first answer. If the crew fails, the first answer stands, with a
    warning."""
    ctx = runtime.context
    assert ctx.crew is not None, "crew is routed to only when the crew is set up"
    write = get_stream_writer()
    escalated = state.get("route") != "crew"
    budget: dict[str, Any] = {}
    if escalated:
        config = ctx.crew.settings
        # The token budget spread over the crew's most calls: research, and a draft and a
        # review per revision.
        calls = 1 + 2 * (1 + config.max_revisions)
        budget = {
            "time_budget_s": config.escalation_time_budget_s,
            "max_tokens": max(16, config.escalation_max_tokens // calls),
        }
    search = SearchDocumentsTool(ctx.retriever, ctx.tenant) if ctx.retriever is not None else None
    live = ctx.allow_retry and not escalated  # stream the writer as it writes
    try:
        result = await ctx.crew.run(
            _last_user_text(state["messages"]), write, search, stream_writer=live, **budget
        )
    except SwitchboardError as exc:
        if not escalated:
            raise
        write(
            Event(
                EventKind.WARNING,
                {"message": "escalation to the crew failed; the first answer stands",
                 "detail": exc.message},
            )
        )  # fmt: skip
        final = {"role": "assistant", "content": state["answer"]}
        return {"escalated": True, "escalation_failed": True, "messages": [final]}
    if not live:
        if escalated:
            attempt = state["attempts"] + 1
            write(Event(EventKind.RETRY, {"attempt": attempt, "reason": "escalated to the crew"}))
        for chunk in result.chunks:
            write(token(chunk))
    written = estimate_tokens(result.report)  # CrewAI's own calls report no usage to us
    return {
        "answer": result.report,
        "sources": [],
        "citations": [],
        "attempts": state.get("attempts", 0) + 1 + result.revisions,
        "escalated": escalated,
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": written,
            "total_tokens": written,
            "estimated": True,
        },
        "finish_reason": "stop",
    }


def after_crew(state: RouterState) -> Literal["check_quality", "remember"]:
    # A failed escalation keeps the first answer, already scored.
    return "remember" if state.get("escalation_failed") else "check_quality"


def after_quality(
    state: RouterState, runtime: Runtime[RouterContext]
) -> Literal["generate", "crew", "remember"]:
    return _after_score(runtime.context, state, state.get("quality"))


# Recalled memories and the assembled prompt are for this turn only: cleared before the turn's
# state is saved, so a thread's checkpoints never hold another thread's facts (forgetting those
# stays complete), nor a second copy of the whole conversation (which doubled the checkpoint).
_TURN_SCRATCH: dict[str, Any] = {"memories": [], "prompt": []}


class _Remembered(BaseModel):
    facts: list[str] = Field(max_length=10)


async def remember(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """Learn what to keep about the user from their message: in the background when the service
    runs one (the answer's `end` need not wait for another model call), else here."""
    ctx = runtime.context
    if ctx.memory is None or ctx.user is None or not ctx.memory_settings.extract:
        return _TURN_SCRATCH
    message = _last_user_text(state["messages"])
    if ctx.background is None:
        await _learn(ctx, ctx.memory, ctx.user, message)
    else:
        ctx.background.start(
            JobOwner(ctx.tenant, ctx.user, ctx.thread_id),
            _learn(ctx, ctx.memory, ctx.user, message),
            name=f"remember:{ctx.thread_id}",
        )
    return _TURN_SCRATCH


async def _learn(ctx: RouterContext, memory: LongTermMemory, user: str, message: str) -> None:
    """Ask the extractor model what the message says about the user (one bounded,
    schema-constrained call) and store it; failures are logged, never raised."""
    config = ctx.memory_settings
    excerpt = message[: config.max_fact_chars * 10]
    schema = {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array",
                "items": {"type": "string", "maxLength": config.max_fact_chars},
                "maxItems": config.max_facts_per_turn,
            }
        },
        "required": ["facts"],
        "additionalProperties": False,
    }
    try:
        completion = await ctx.llm.complete(
            Role.EXTRACTOR,
            [
                {
                    "role": "system",
                    "content": prompts.REMEMBER.format(limit=config.max_facts_per_turn),
                },
                {"role": "user", "content": f"<<<MESSAGE\n{excerpt}\nMESSAGE>>>"},
            ],
            max_tokens=config.extraction_max_tokens,
            temperature=0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "facts", "strict": True, "schema": schema},
            },
        )
        facts = _Remembered.model_validate_json(completion.text).facts
    except (BackendError, ValidationError, ValueError) as exc:
        log.info("nothing remembered from this turn: %s", str(exc)[:200])
        return
    kept = [" ".join(f.split())[: config.max_fact_chars] for f in facts if f.strip()]
    if not kept:
        return
    try:
        await memory.remember(ctx.tenant, user, ctx.thread_id, kept[: config.max_facts_per_turn])
    except Exception as exc:  # a store failure after the answer must not fail the turn
        log.warning("could not store memories: %s", exc)


def _wants_retry(ctx: RouterContext, score: float | None, attempts: int) -> bool:
    return (
        score is not None
        and score < ctx.quality.threshold
        and ctx.allow_retry
        and attempts <= ctx.quality.max_retries
    )


async def _judge(ctx: RouterContext, question: str, answer: str) -> tuple[float | None, str]:
    text = await _structured_answer(
        ctx,
        Role.JUDGE,
        prompts.JUDGE,
        f"Question:\n{question}\n\nAnswer:\n{answer}",
        field="score",
        values=[1, 2, 3, 4, 5],
        max_tokens=16,
    )
    if isinstance(text, BackendError):
        return None, f"judge model failed ({text.code})"
    raw = parse_score(text)
    if raw is None:
        return None, f"unparsable judge answer {text[:60]!r}"
    return (raw - 1) / 4, f"judge gave {raw}/5"


def parse_score(text: str) -> int | None:
    """The 1-5 score in a judge's answer (JSON `{"score": n}` or a bare number), else None."""
    candidate = _answer_value(text, "score")
    if isinstance(candidate, str) and candidate.isdigit():
        candidate = int(candidate)
    if isinstance(candidate, int) and not isinstance(candidate, bool) and 1 <= candidate <= 5:
        return candidate
    return None


def _answer_value(text: str, key: str) -> object:
    """What a model's structured answer says for `key`: the field of a JSON object, a bare JSON
    value, or, for text that is not JSON, the text itself."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    return parsed.get(key) if isinstance(parsed, dict) else parsed


def _last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return cast(str, message["content"])
    return ""


RouterGraph = CompiledStateGraph[RouterState, RouterContext, RouterInput, RouterOutput]


def build_router_graph(checkpointer: BaseCheckpointSaver[Any] | None = None) -> RouterGraph:
    """The compiled router graph; with a checkpointer, each thread keeps its conversation."""
    graph = StateGraph(
        RouterState,
        context_schema=RouterContext,
        input_schema=RouterInput,
        output_schema=RouterOutput,
    )
    graph.add_node("recall", _traced("recall", recall))
    graph.add_node("classify", _traced("classify", classify))
    graph.add_node("direct", _traced("direct", direct))
    graph.add_node("rag", _traced("rag", rag))
    graph.add_node("crew", _traced("crew", crew))
    graph.add_node("generate", _traced("generate", generate))
    graph.add_node("check_quality", _traced("check_quality", check_quality))
    graph.add_node("remember", _traced("remember", remember))
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "classify")
    graph.add_conditional_edges(
        "classify", lambda s: s["route"], {"direct": "direct", "rag": "rag", "crew": "crew"}
    )
    graph.add_conditional_edges("crew", after_crew, ["check_quality", "remember"])
    graph.add_edge("direct", "generate")
    graph.add_edge("rag", "generate")
    graph.add_edge("generate", "check_quality")
    graph.add_conditional_edges("check_quality", after_quality, ["generate", "crew", "remember"])
    graph.add_edge("remember", END)
    return graph.compile(name="router", checkpointer=checkpointer)


_Node = TypeVar("_Node", bound=Callable[..., Any])


def _traced(name: str, node: _Node) -> _Node:
    """The node as a span of the run's trace, under the run's root (`switchboard.tracing`);
    what it does inside (model calls, look-ups) nests under it. Unchanged while tracing is off."""
    if inspect.iscoroutinefunction(node):

        @functools.wraps(node)
        async def traced_async(state: RouterState, runtime: Runtime[RouterContext]) -> Any:
            if not current_tracing().enabled:
                return await node(state, runtime)
            with _node_span(name, state) as done:
                return done(await node(state, runtime))

        return cast(_Node, traced_async)

    @functools.wraps(node)
    def traced(state: RouterState, runtime: Runtime[RouterContext]) -> Any:
        if not current_tracing().enabled:
            return node(state, runtime)
        with _node_span(name, state) as done:
            return done(node(state, runtime))

    return cast(_Node, traced)


@contextmanager
def _node_span(name: str, state: RouterState) -> Iterator[Callable[[Any], Any]]:
    tracing = current_tracing()
    route = state.get("route")
    with (
        tracing.tagged([f"route:{route}"] if route else []),
        tracing.span(name, kind="chain") as span,
    ):

        def done(update: Any) -> Any:
            if isinstance(update, dict):
                span.update(output={"updated": sorted(update)})
            return update

        yield done
