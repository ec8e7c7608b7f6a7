"""LangGraph Server's assistants: one per workflow, with the id LangGraph's server would give it
(uuid5 of the graph name); either the id or the workflow's name finds it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep, get_caller
from api.langgraph_schemas import RunInput, RunOptions
from api.openapi import errors
from api.services import Services
from graphs import WorkflowSpec
from switchboard.errors import NotFound
from switchboard.runs import assistant_uuid

# No route here reads its caller, but each needs one (401 without).
router = APIRouter(tags=["assistants"], dependencies=[Depends(get_caller)])

_CREATED = "2026-01-01T00:00:00+00:00"  # the workflows are built in, not created


class AssistantSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


def assistant(spec: WorkflowSpec) -> dict[str, Any]:
    return {
        "assistant_id": assistant_uuid(spec.name),
        "graph_id": spec.name,
        "name": spec.name,
        "description": spec.description,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": _CREATED,
        "updated_at": _CREATED,
    }


def find_workflow(services: Services, assistant_id: str) -> WorkflowSpec:
    """The workflow named `assistant_id`, or whose assistant has that id."""
    spec = services.workflows.get(assistant_id)
    if spec is None:
        spec = next(
            (s for s in services.workflows.values() if assistant_uuid(s.name) == assistant_id),
            None,
        )
    if spec is None:
        raise NotFound(f"assistant {assistant_id!r} not found", param="assistant_id")
    return spec


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, services: ServicesDep) -> list[dict[str, Any]]:
    found = [
        assistant(spec)
        for spec in services.workflows.values()
        if (body.graph_id is None or spec.name == body.graph_id)
        and (body.name is None or spec.name == body.name)
        and all(assistant(spec)["metadata"].get(k) == v for k, v in (body.metadata or {}).items())
    ]
    return found[body.offset : body.offset + body.limit]


@router.get("/assistants/{assistant_id}", responses=errors(404))
async def get_assistant(assistant_id: str, services: ServicesDep) -> dict[str, Any]:
    return assistant(find_workflow(services, assistant_id))


@router.get("/assistants/{assistant_id}/schemas", responses=errors(404))
async def assistant_schemas(assistant_id: str, services: ServicesDep) -> dict[str, Any]:
    """The run input, the options a run takes (as `context` or `config.configurable`), and
    what a finished run's values hold."""
    spec = find_workflow(services, assistant_id)
    options = RunOptions.model_json_schema()
    return {
        "graph_id": spec.name,
        "input_schema": RunInput.model_json_schema(),
        "output_schema": spec.graph.get_output_jsonschema(),
        "state_schema": None,
        "config_schema": options,
        "context_schema": options,
    }
