"""The workflows the service offers (the "assistants" and the OpenAI "models"), by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.router import RouterGraph, build_router_graph


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    description: str
    graph: RouterGraph


def build_registry(checkpointer: BaseCheckpointSaver[Any] | None = None) -> dict[str, WorkflowSpec]:
    """Every workflow, compiled once at start-up, sharing the checkpointer."""
    router = WorkflowSpec(
        name="switchboard",
        description="Routes each turn to retrieval, direct generation or a research crew.",
        graph=build_router_graph(checkpointer),
    )
    return {router.name: router}
