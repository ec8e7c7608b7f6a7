"""The router graph: classify → (rag | direct | crew) → generate → check_quality.

`classify` asks the router model for a route with a constrained (JSON-schema) answer and falls
back to `direct` on anything it cannot use. Only the routes in `AVAILABLE_ROUTES` can be taken;
`rag` and `crew` join when their issues land. `check_quality` grades the answer with the judge
model and, on a low score, sends it back to `generate` once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict, cast, get_args

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from graphs import prompts
from switchboard.errors import BackendError
from switchboard.events import Event, EventKind, token
from switchboard.llm import LLMPool, Message
from switchboard.settings import QualitySettings, Role, RouterSettings

log = logging.getLogger(__name__)

Route = Literal["rag", "direct", "crew"]
ALL_ROUTES: tuple[Route, ...] = get_args(Route)
AVAILABLE_ROUTES: tuple[Route, ...] = ("direct",)
_CLASSIFIER_INPUT_CHARS = 2000


class RouterInput(TypedDict):
    messages: list[Message]


class RouterOutput(TypedDict, total=False):
    route: Route
    answer: str
    quality: float | None
    attempts: int
    usage: dict[str, int | bool]
    finish_reason: str


class RouterState(TypedDict):
    messages: list[Message]
    route: NotRequired[Route]
    prompt: NotRequired[list[Message]]
    answer: NotRequired[str]
    quality: NotRequired[float | None]
    attempts: NotRequired[int]
    usage: NotRequired[dict[str, int | bool]]
    finish_reason: NotRequired[str]


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


async def classify(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    write = get_stream_writer()
    requested: Route | None
    if ctx.route is not None:
        requested, reason = ctx.route, "pinned by the request"
    else:
        requested, reason = await _ask_router(ctx, _last_user_text(state["messages"]))
    route: Route = requested if requested in AVAILABLE_ROUTES else "direct"
    if requested != route:
        reason = f"{reason}; {requested!r} is not available, using direct"
    write(Event(EventKind.ROUTE, {"route": route, "requested": requested, "reason": reason}))
    return {"route": route, "attempts": 0}


async def _ask_router(ctx: RouterContext, question: str) -> tuple[Route | None, str]:
    schema = {
        "type": "object",
        "properties": {"route": {"type": "string", "enum": list(ALL_ROUTES)}},
        "required": ["route"],
        "additionalProperties": False,
    }
    try:
        completion = await ctx.llm.complete(
            Role.ROUTER,
            [
                {"role": "system", "content": prompts.CLASSIFIER},
                {"role": "user", "content": question[:_CLASSIFIER_INPUT_CHARS]},
            ],
            max_tokens=ctx.router.classifier_max_tokens,
            temperature=0,
            response_format=_json_schema("route", schema),
        )
    except BackendError as exc:
        return None, f"router model failed ({exc.code})"
    route = parse_route(completion.text)
    if route is None:
        return None, f"unparsable router answer {completion.text[:60]!r}"
    return route, "classified by the router model"


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


async def generate(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    write = get_stream_writer()
    attempts = state.get("attempts", 0) + 1
    prompt = state["prompt"]
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
    return {
        "answer": "".join(pieces),
        "attempts": attempts,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "estimated": usage.estimated,
        },
        "finish_reason": stream.finish_reason,
    }


async def check_quality(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    if not ctx.quality.enabled:
        return {"quality": None}
    score, detail = await _judge(ctx, _last_user_text(state["messages"]), state["answer"])
    retry = _wants_retry(ctx, score, state["attempts"])
    get_stream_writer()(
        Event(
            EventKind.QUALITY,
            {"score": score, "detail": detail, "attempt": state["attempts"], "retry": retry},
        )
    )
    return {"quality": score}


def after_quality(
    state: RouterState, runtime: Runtime[RouterContext]
) -> Literal["generate", "__end__"]:
    if _wants_retry(runtime.context, state.get("quality"), state["attempts"]):
        return "generate"
    return "__end__"


def _wants_retry(ctx: RouterContext, score: float | None, attempts: int) -> bool:
    return (
        score is not None
        and score < ctx.quality.threshold
        and ctx.allow_retry
        and attempts <= ctx.quality.max_retries
    )


async def _judge(ctx: RouterContext, question: str, answer: str) -> tuple[float | None, str]:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
        "required": ["score"],
        "additionalProperties": False,
    }
    try:
        completion = await ctx.llm.complete(
            Role.JUDGE,
            [
                {"role": "system", "content": prompts.JUDGE},
                {"role": "user", "content": f"Question:\n{question}\n\nAnswer:\n{answer}"},
            ],
            max_tokens=16,
            temperature=0,
            response_format=_json_schema("grade", schema),
        )
    except BackendError as exc:
        return None, f"judge model failed ({exc.code})"
    raw = parse_score(completion.text)
    if raw is None:
        return None, f"unparsable judge answer {completion.text[:60]!r}"
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


def _json_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return cast(str, message["content"])
    return ""


RouterGraph = CompiledStateGraph[RouterState, RouterContext, RouterInput, RouterOutput]


def build_router_graph() -> RouterGraph:
    """The compiled router graph. Stateless for now: conversations are sent whole."""
    graph = StateGraph(
        RouterState,
        context_schema=RouterContext,
        input_schema=RouterInput,
        output_schema=RouterOutput,
    )
    graph.add_node("classify", classify)
    graph.add_node("direct", direct)
    graph.add_node("generate", generate)
    graph.add_node("check_quality", check_quality)
    graph.add_edge(START, "classify")
    # One entry per available route; `rag` and `crew` nodes are added by their issues.
    graph.add_conditional_edges("classify", lambda s: s["route"], {"direct": "direct"})
    graph.add_edge("direct", "generate")
    graph.add_edge("generate", "check_quality")
    graph.add_conditional_edges("check_quality", after_quality, ["generate", END])
    return graph.compile(name="router")
