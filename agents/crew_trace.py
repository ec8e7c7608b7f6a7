"""The crew's steps as spans of the run's trace (`switchboard.tracing`), under the crew node's span:
each task, the agent executing it, the agent's model calls (generations with model, prompt,
output and token usage — counted by us when the backend reports none) and its tool calls.

CrewAI reports its steps as events (`agents.crew.CrewBridge` receives this run's), some from
worker threads; those threads copy the run's context, so a task's span, opened with no parent,
lands under the crew node's span. Everything below is opened under its parent explicitly, since a
span opened in one of CrewAI's threads is not current in another.
"""

from __future__ import annotations

import threading
from typing import Any

from switchboard.llm import Usage
from switchboard.llm.tokens import estimate_prompt_tokens, estimate_tokens
from switchboard.tracing import Observation, Tracing


class CrewTrace:
    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self._open: dict[tuple[str, str], Observation] = {}  # (step, its key) -> open span
        self._agents: dict[str, Observation] = {}  # agent key -> its open span
        self._lock = threading.Lock()

    def on(self, agent: str, event: Any) -> None:
        """One of CrewAI's events of this run (`agent`: its agent's key)."""
        if not self._tracing.enabled:
            return
        from crewai.events import (
            AgentExecutionCompletedEvent,
            AgentExecutionStartedEvent,
            LLMCallCompletedEvent,
            LLMCallFailedEvent,
            LLMCallStartedEvent,
            TaskCompletedEvent,
            TaskFailedEvent,
            TaskStartedEvent,
            ToolUsageErrorEvent,
            ToolUsageFinishedEvent,
            ToolUsageStartedEvent,
        )

        with self._lock:
            if isinstance(event, TaskStartedEvent):
                self._start("task", agent, None, f"task:{event.task_name}", "chain")
            elif isinstance(event, TaskCompletedEvent):
                self._end("task", agent, output=str(getattr(event, "output", "") or ""))
            elif isinstance(event, TaskFailedEvent):
                self._end("task", agent, level="ERROR", status_message=str(event.error))
            elif isinstance(event, AgentExecutionStartedEvent):
                parent = self._open.get(("task", agent))
                self._agents[agent] = self._start("agent", agent, parent, agent, "agent")
            elif isinstance(event, AgentExecutionCompletedEvent):
                self._end("agent", agent)
                self._agents.pop(agent, None)
            elif isinstance(event, LLMCallStartedEvent):
                self._start(
                    "llm",
                    str(event.call_id),
                    self._agents.get(agent),
                    f"crew:{agent}",
                    "generation",
                    model=event.model,
                    input=event.messages,
                )
            elif isinstance(event, LLMCallCompletedEvent):
                self._end("llm", str(event.call_id), **_completion(event))
            elif isinstance(event, LLMCallFailedEvent):
                self._end("llm", str(event.call_id), level="ERROR", status_message=event.error)
            elif isinstance(event, ToolUsageStartedEvent):
                parent = self._agents.get(agent)
                name = f"tool:{event.tool_name}"
                self._start("tool", agent, parent, name, "tool", input=event.tool_args)
            elif isinstance(event, ToolUsageFinishedEvent):
                self._end("tool", agent, output=str(event.output))
            elif isinstance(event, ToolUsageErrorEvent):
                self._end("tool", agent, level="ERROR", status_message=str(event.error))

    def close(self) -> None:
        """End what is still open (a cancelled or failed crew)."""
        with self._lock:
            for span in self._open.values():
                span.end()
            self._open.clear()
            self._agents.clear()

    def _start(
        self, step: str, key: str, parent: Observation | None, name: str, kind: str, **fields: Any
    ) -> Observation:
        span = self._tracing.observation(name, kind=kind, parent=parent, **fields)
        self._open[(step, key)] = span
        return span

    def _end(self, step: str, key: str, **fields: Any) -> None:
        span = self._open.pop((step, key), None)
        if span is not None:
            span.update(**fields)
            span.end()


def usage_of(event: Any) -> Usage:
    """A finished model call's usage: the backend's, else counted by us (`estimated`)."""
    usage = event.usage or {}
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    estimated = prompt is None or completion is None
    if prompt is None:
        messages = event.messages if isinstance(event.messages, list) else []
        prompt = estimate_prompt_tokens(messages)
    if completion is None:
        completion = estimate_tokens(_output(event))
    return Usage(int(prompt), int(completion), estimated)


def _output(event: Any) -> str:
    return event.response if isinstance(event.response, str) else str(event.response)


def _completion(event: Any) -> dict[str, Any]:
    """A finished model call's output, model and usage (estimated when not reported)."""
    usage = usage_of(event)
    return {
        "output": _output(event),
        "model": event.model,
        "usage_details": {"input": usage.prompt_tokens, "output": usage.completion_tokens},
        "metadata": {"usage_estimated": usage.estimated},
    }
