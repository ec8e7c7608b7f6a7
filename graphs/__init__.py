"""LangGraph state machines: the router graph and the registry that names the workflows."""

from graphs.registry import WorkflowSpec, build_registry
from graphs.router import RouterContext, RouterGraph, build_router_graph

__all__ = ["RouterContext", "RouterGraph", "WorkflowSpec", "build_registry", "build_router_graph"]
