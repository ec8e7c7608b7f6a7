"""The research crew: a researcher gathers facts with the document search tool, a writer drafts
the report, a reviewer approves it or sends it back with required changes (at most
`max_revisions` times). Roles and prompts are in `agents/roles.py`.

CrewAI is imported off the request path (it takes seconds) by `import_crewai`, which turns
its telemetry and tracing off and keeps its files under the service's data folder. Its model calls
go through CrewAI's native OpenAI provider to the `crew` role's backend, with CrewAI's own HTTP
client; the crew runs on the caller's event loop (`Crew.akickoff`), so cancelling the caller's
task stops it at its next await.

Events: CrewAI's event bus is process-wide, but a stream sink (`add_stream_sink`) lives in a
context variable, so each run's `CrewBridge` sees only the events emitted in that run's context
(tool calls run in threads that copy it). The bridge turns them into `crew` events namespaced by
agent, and the writer's streamed chunks into `token` events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import certifi
import httpx

from agents import roles
from agents.crew_trace import CrewTrace, usage_of
from switchboard import prompt_data
from switchboard.errors import SwitchboardError
from switchboard.events import Event, EventKind, token
from switchboard.llm import RUN_USAGE, LLMPool
from switchboard.settings import CrewSettings, Role
from switchboard.tracing import current as current_tracing

if TYPE_CHECKING:
    from crewai import LLM

CREWAI_QUIET_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",  # not OTEL_SDK_DISABLED: that would silence Langfuse too
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}
_AGENT_KEYS = {spec.role: spec.key for spec in (roles.RESEARCHER, roles.WRITER, roles.REVIEWER)}
_TOOL_TIMEOUT_S = 30.0


class Search(Protocol):
    """What the researcher's tool calls: `tools.retrieval.SearchDocumentsTool` in the service."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    async def __call__(self, query: str, k: int = 5) -> list[dict[str, Any]]: ...


class CrewFailed(SwitchboardError):
    status = 502
    type = "backend_error"
    code = "crew_failed"


class CrewTimeout(SwitchboardError):
    status = 504
    type = "backend_error"
    code = "crew_timeout"


_import_lock = threading.Lock()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def import_crewai(data_dir: Path) -> None:
    """Import CrewAI (seconds; done once, off the request path where possible) quietly and
    without touching the home folder: no telemetry, no tracing prompt, no version check; its
    storage (appdirs: XDG_DATA_HOME) under the data folder; and, for the import only, HOME
    there too, since CrewAI creates `~/.config/crewai` and a credentials key on import."""
    with _import_lock:
        if "crewai" in sys.modules:
            return
        home = data_dir / "crewai"
        (home / "data").mkdir(parents=True, exist_ok=True)
        os.environ.update(CREWAI_QUIET_ENV)
        os.environ.setdefault("XDG_DATA_HOME", str(home / "data"))
        os.environ.setdefault("CREWAI_STORAGE_DIR", "switchboard")
        real_home = os.environ.get("HOME")
        os.environ["HOME"] = str(home)
        try:
            import crewai  # noqa: F401
        finally:
            if real_home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = real_home
        # Every agent call warns that token counts are estimated for non-OpenAI models.
        logging.getLogger("crewai").setLevel(logging.ERROR)


@dataclass(slots=True)
class CrewResult:
    report: str
    approved: bool
    revisions: int
    notes: str
    # The report as the writer's model streamed it, chunk by chunk: what a caller that did not
    # stream the writer sends once the report is final.
    chunks: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verdict:
    approved: bool
    changes: str


def parse_verdict(text: str) -> Verdict:
    """The reviewer's answer: `APPROVED` on the first line, or `CHANGES:` and the changes.
    Anything else counts as changes requested, with the whole answer as the changes."""
    stripped = text.strip()
    first, _, rest = stripped.partition("\n")
    head = first.strip().strip("*`#: ").upper()
    if head.startswith("APPROVED"):
        return Verdict(True, "")
    if head.startswith("CHANGES"):
        changes = first.split(":", 1)[1].strip() if ":" in first else ""
        return Verdict(False, "\n".join(p for p in (changes, rest.strip()) if p))
    return Verdict(False, stripped)


class CrewBridge:
    """This run's CrewAI events, as the run's own events. Called by CrewAI in the emitting
    thread: events from other threads are handed to the run's loop."""

    def __init__(self, write: Callable[[Event], None], stream_writer: bool) -> None:
        self._write = write
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._stream_writer = stream_writer
        self.draft_chunks: list[str] = []  # the chunks of the writer's latest model call
        self.cancelled = False
        self.trace = CrewTrace(current_tracing())  # the steps as spans of the run's trace
        # The run's token total (its caller's rate limit), taken here: CrewAI's threads do not
        # see the run's context.
        self._usage = RUN_USAGE.get()

    def _emit(self, event: Event) -> None:
        if threading.get_ident() == self._thread:
            self._write(event)
        else:
            self._loop.call_soon_threadsafe(self._write_unless_cancelled, event)

    def _write_unless_cancelled(self, event: Event) -> None:
        # Queued from a worker thread just before the run was cancelled: drop it.
        if not self.cancelled:
            self._write(event)

    def crew_event(self, agent: str, kind: str, **data: Any) -> None:
        self._emit(Event(EventKind.CREW, {"agent": agent, "type": kind, **data}))

    def __call__(self, source: Any, event: Any) -> None:
        if self.cancelled:
            # The run was cancelled while a model call was in flight in CrewAI's worker thread:
            # abort it at its next chunk (CrewAI does not retry HookAborted).
            from crewai.hooks import HookAborted

            raise HookAborted("the run was cancelled")
        self.trace.on(_agent_key(event), event)
        from crewai.events import (
            AgentExecutionCompletedEvent,
            AgentExecutionStartedEvent,
            LLMCallCompletedEvent,
            LLMCallStartedEvent,
            LLMStreamChunkEvent,
            TaskCompletedEvent,
            TaskFailedEvent,
            TaskStartedEvent,
            ToolUsageErrorEvent,
            ToolUsageFinishedEvent,
            ToolUsageStartedEvent,
        )

        agent = _agent_key(event)
        if isinstance(event, LLMCallCompletedEvent) and self._usage is not None:
            self._usage.add(usage_of(event))
        elif isinstance(event, LLMCallStartedEvent):
            if agent == roles.WRITER.key:
                self.draft_chunks = []  # CrewAI may call again (a retry, a forced answer)
        elif isinstance(event, LLMStreamChunkEvent):
            if agent == roles.WRITER.key and event.chunk:
                self.draft_chunks.append(event.chunk)
                if self._stream_writer:
                    self._emit(token(event.chunk))
        elif isinstance(event, AgentExecutionStartedEvent):
            self.crew_event(agent, "agent_started")
        elif isinstance(event, AgentExecutionCompletedEvent):
            self.crew_event(agent, "agent_finished")
        elif isinstance(event, TaskStartedEvent):
            self.crew_event(agent, "task_started", task=event.task_name)
        elif isinstance(event, TaskCompletedEvent):
            self.crew_event(agent, "task_finished", task=event.task_name)
        elif isinstance(event, TaskFailedEvent):
            self.crew_event(agent, "task_failed", task=event.task_name, error=event.error)
        elif isinstance(event, ToolUsageStartedEvent):
            self.crew_event(agent, "tool_call", tool=event.tool_name, args=event.tool_args)
        elif isinstance(event, ToolUsageFinishedEvent):
            self.crew_event(agent, "tool_result", tool=event.tool_name, output=str(event.output))
        elif isinstance(event, ToolUsageErrorEvent):
            self.crew_event(agent, "tool_error", tool=event.tool_name, error=str(event.error))


def _agent_key(event: Any) -> str:
    role = getattr(event, "agent_role", None)
    if not role:
        task = getattr(event, "task", None)
        agent = (
            getattr(event, "agent", None)
            or getattr(event, "from_agent", None)
            or getattr(task, "agent", None)
        )
        role = getattr(agent, "role", None)
    return _AGENT_KEYS.get(str(role), "crew")


def _search_tool(search: Search, k: int, loop: asyncio.AbstractEventLoop) -> Any:
    """The document search as a CrewAI tool. CrewAI runs tools in a worker thread; the search
    itself runs on the service's loop, where its clients live. A failure is returned as text,
    so that the agent sees it and carries on."""
    from crewai.tools import BaseTool
    from pydantic import BaseModel, Field

    class SearchArgs(BaseModel):
        query: str = Field(description="What to look for in the user's documents.")

    class SearchDocuments(BaseTool):
        name: str = search.name
        description: str = search.description
        args_schema: type[BaseModel] = SearchArgs

        def _run(self, query: str) -> str:
            future = asyncio.run_coroutine_threadsafe(search(query, k), loop)
            try:
                found = future.result(timeout=_TOOL_TIMEOUT_S)
            except Exception as exc:
                future.cancel()
                return f"Search failed: {exc}"
            if not found:
                return "No passages found."
            # Passages are quoted data, in blocks they cannot close (`switchboard.prompt_data`).
            return prompt_data.blocks(
                "passages",
                (
                    prompt_data.block(
                        "passage", p["text"], {"title": p["title"], "section": p.get("section")}
                    )
                    for p in found
                ),
            )

    return SearchDocuments()


@dataclass(frozen=True, slots=True)
class CrewRunner:
    """Runs the research crew for one request."""

    llm: LLMPool
    settings: CrewSettings
    data_dir: Path
    _templates: dict[tuple[str, str], Any] = field(default_factory=dict)
    # Each running crew holds a thread of the loop's default executor for its model calls
    # (CrewAI's akickoff), and its search tool needs another for the embedder: a bound on
    # crews at once keeps the executor from filling up (waiting counts against the budget).
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_slots", asyncio.Semaphore(self.settings.max_concurrent))

    async def warm(self) -> None:
        """Import CrewAI now, in a thread, so that the first crew does not wait for it."""
        await asyncio.to_thread(import_crewai, self.data_dir)

    def _model(self, settings: CrewSettings, max_tokens: int | None) -> tuple[LLM, Any]:
        """This run's model: a copy of a per-backend template with an HTTP client of its own
        (cancelling the run closes it). Building an `LLM` from scratch costs two new SSL
        contexts (one per OpenAI client it makes), about 30 ms each; the copy shares one."""
        from crewai import LLM
        from openai import OpenAI

        picked = self.llm.backend_for(Role.CREW)
        if picked is None:
            raise CrewFailed("no backend serves the crew role (or every circuit is open)")
        backend, model = picked
        base_url = str(backend.base_url).rstrip("/")
        timeout = self.llm.settings.request_timeout
        key = (base_url, model)
        template = self._templates.get(key)
        if template is None:
            template = LLM(
                model=f"openai/{model}",
                base_url=base_url,
                api_key=backend.api_key,
                stream=True,
                max_tokens=settings.max_tokens,
                max_retries=1,
                timeout=timeout,
            )
            self._templates[key] = template
        llm = template.model_copy(update={"max_tokens": max_tokens} if max_tokens else None)
        # CrewAI's OpenAI provider makes its calls with the private `_client` (akickoff runs
        # the sync call in a worker thread).
        client = OpenAI(
            api_key=backend.api_key,
            base_url=base_url,
            max_retries=1,
            timeout=timeout,
            http_client=httpx.Client(verify=_ssl_context(), timeout=timeout),
        )
        llm._client = client
        return llm, client

    async def run(
        self,
        request: str,
        write: Callable[[Event], None],
        search: Search | None,
        *,
        stream_writer: bool = True,
        time_budget_s: float | None = None,
        max_tokens: int | None = None,
    ) -> CrewResult:
        """The crew's report on `request`; raises `CrewTimeout` past the time budget and
        `CrewFailed` when the crew cannot finish. `max_tokens` bounds each model call (the
        setting's when not given). With `stream_writer` False the writer's tokens are not
        written: the caller sends `CrewResult.chunks` once the report is final."""
        budget = time_budget_s or self.settings.time_budget_s
        try:
            await self.warm()
        except Exception as exc:
            raise CrewFailed(f"CrewAI could not be imported: {exc}") from exc
        try:
            async with asyncio.timeout(budget), self._slots:
                return await self._run(request, write, search, stream_writer, max_tokens)
        except TimeoutError:
            raise CrewTimeout(f"the crew did not finish within {budget:g} s") from None

    async def _run(
        self,
        request: str,
        write: Callable[[Event], None],
        search: Search | None,
        stream_writer: bool,
        max_tokens: int | None,
    ) -> CrewResult:
        settings = self.settings
        llm, client = self._model(settings, max_tokens)
        try:
            return await self._crew(request, write, search, stream_writer, llm, client)
        except (asyncio.CancelledError, SwitchboardError):
            raise
        except Exception as exc:  # building agents and tasks: CrewAI's validation errors
            raise CrewFailed(f"the crew failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
        finally:
            client.close()  # this run's own connection pool

    async def _crew(
        self,
        request: str,
        write: Callable[[Event], None],
        search: Search | None,
        stream_writer: bool,
        llm: Any,
        client: Any,
    ) -> CrewResult:
        from crewai import Agent, Crew, Process, Task
        from crewai.events.stream_context import add_stream_sink, reset_stream_sinks

        settings = self.settings
        loop = asyncio.get_running_loop()
        tools = [_search_tool(search, settings.search_results, loop)] if search is not None else []

        def agent(spec: roles.AgentSpec, with_tools: bool = False) -> Any:
            return Agent(
                role=spec.role,
                goal=spec.goal,
                backstory=spec.backstory,
                llm=llm,
                tools=tools if with_tools else [],
                allow_delegation=False,
                max_iter=settings.max_iterations,
                max_retry_limit=1,
                verbose=False,
            )

        researcher, writer, reviewer = (
            agent(roles.RESEARCHER, with_tools=True),
            agent(roles.WRITER),
            agent(roles.REVIEWER),
        )
        bridge = CrewBridge(write, stream_writer)
        sink = add_stream_sink(bridge)
        started = time.perf_counter()
        try:
            research = Task(
                name="research",
                description=roles.RESEARCH_TASK.format(request=request),
                expected_output=roles.RESEARCH_OUTPUT,
                agent=researcher,
            )
            draft_task, review_task = _write_and_review(writer, reviewer, request, research, "")
            await _kickoff(
                Crew(
                    agents=[researcher, writer, reviewer],
                    tasks=[research, draft_task, review_task],
                    process=Process.sequential,
                    verbose=False,
                ),
                bridge,
                client,
            )
            notes = _output(research)
            draft, verdict = _output(draft_task), parse_verdict(_output(review_task))
            revisions = 0
            self._verdict(bridge, verdict, revisions)
            while not verdict.approved and revisions < settings.max_revisions:
                revisions += 1
                if stream_writer:
                    write(
                        Event(
                            EventKind.RETRY,
                            {"attempt": revisions, "reason": "the reviewer asked for changes"},
                        )
                    )
                revision = roles.REVISION.format(
                    number=revisions, draft=draft, changes=verdict.changes
                )
                draft_task, review_task = _write_and_review(
                    writer, reviewer, request, None, revision, notes
                )
                await _kickoff(
                    Crew(
                        agents=[writer, reviewer],
                        tasks=[draft_task, review_task],
                        process=Process.sequential,
                        verbose=False,
                    ),
                    bridge,
                    client,
                )
                draft, verdict = _output(draft_task), parse_verdict(_output(review_task))
                self._verdict(bridge, verdict, revisions)
        finally:
            reset_stream_sinks(sink)
            bridge.trace.close()
        # What the writer's last model call streamed (the bridge starts over at each), unless
        # CrewAI's answer differs from it (then the answer itself, in one piece).
        streamed = bridge.draft_chunks
        chunks = streamed if "".join(streamed).strip() == draft.strip() else [draft]
        bridge.crew_event(
            "crew",
            "crew_finished",
            approved=verdict.approved,
            revisions=revisions,
            seconds=round(time.perf_counter() - started, 3),
        )
        return CrewResult(draft, verdict.approved, revisions, notes, chunks)

    @staticmethod
    def _verdict(bridge: CrewBridge, verdict: Verdict, revisions: int) -> None:
        bridge.crew_event(
            roles.REVIEWER.key,
            "verdict",
            approved=verdict.approved,
            changes=verdict.changes,
            revision=revisions,
        )


def _write_and_review(
    writer: Any,
    reviewer: Any,
    request: str,
    research: Any | None,
    revision: str,
    notes: str | None = None,
) -> tuple[Any, Any]:
    from crewai import Task

    description = roles.WRITE_TASK.format(request=request, revision=revision)
    if notes is not None:
        description += f"\n\nThe research notes:\n<<<NOTES\n{notes}\nNOTES>>>"
    draft = Task(
        name="write",
        description=description,
        expected_output=roles.WRITE_OUTPUT,
        agent=writer,
        context=[research] if research is not None else [],
    )
    review = Task(
        name="review",
        description=roles.REVIEW_TASK.format(request=request)
        + (f"\n\nThe research notes:\n<<<NOTES\n{notes}\nNOTES>>>" if notes is not None else ""),
        expected_output=roles.REVIEW_OUTPUT,
        agent=reviewer,
        context=[research, draft] if research is not None else [draft],
    )
    return draft, review


async def _kickoff(crew: Any, bridge: CrewBridge, client: Any) -> None:
    try:
        await crew.akickoff()
    except asyncio.CancelledError:
        # `akickoff` makes its model calls in a worker thread, which cancelling does not stop:
        # the sink aborts the call at its next chunk, and closing the run's own HTTP client
        # (see `CrewRunner._model`) ends the response.
        bridge.cancelled = True
        client.close()
        raise
    except SwitchboardError:
        raise
    except Exception as exc:  # CrewAI raises plain exceptions (ValueError, ValidationError, ...)
        raise CrewFailed(f"the crew failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _output(task: Any) -> str:
    output = task.output
    return str(output.raw) if output is not None and output.raw is not None else ""
