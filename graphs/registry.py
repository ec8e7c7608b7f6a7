"""The workflows the service offers (the "assistants" and the OpenAI "models"), by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.router import Route, RouterGraph, build_router_graph


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    description: str
    graph: RouterGraph
    route: Route | None = None  # every turn takes this route (no classification)


def build_registry(
    checkpointer: BaseCheckpointSaver[Any] | None = None, *, crew: bool = True
) -> dict[str, WorkflowSpec]:
    """Every workflow, compiled once at start-up, sharing the checkpointer. The research crew
    on its own is the router graph with every turn routed to `crew`."""
    graph = build_router_graph(checkpointer)
    specs = [
        WorkflowSpec(
            name="switchboard",
            description="Routes each turn to retrieval, direct generation or a research crew.",
            graph=graph,
        )
    ]
    if crew:
        specs.append(
            WorkflowSpec(
                name="research-crew",
                description="A researcher, a writer and a reviewer write a report on the request.",
                graph=graph,
                route="crew",
            )
        )
    return {spec.name: spec for spec in specs}
