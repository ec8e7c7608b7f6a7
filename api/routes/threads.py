"""Threads and users: a thread's state and history (the LangGraph Server shapes, so that issue
6's runs API extends them), deleting a thread, a user's memories, and forgetting a user.

Another tenant's thread is a 404, as is a thread that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from langgraph.types import StateSnapshot
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep, TenantDep
from api.langgraph_schemas import ThreadCreate, ThreadSearch
from api.limits import check_metadata
from api.openapi import errors
from api.services import Services
from memory.forget import Forgetter
from memory.threads import ThreadOwner
from switchboard.errors import NotFound, SwitchboardError
from switchboard.runs import new_run_id


class ThreadExists(SwitchboardError):
    status = 409
    type = "invalid_request_error"
    code = "thread_exists"


router = APIRouter(tags=["threads"])

ThreadId = Annotated[str, Path(max_length=128)]
UserId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.@:+-]{1,128}$")]


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=10, ge=1, le=1000)


async def _forgetter(services: Services) -> Forgetter:
    retrieval = await services.documents()
    return Forgetter(
        checkpointer=services.memory.checkpointer,
        threads=services.memory.threads,
        long_term=services.memory.long_term,
        store=retrieval.store if retrieval else None,
        ingestor=retrieval.ingestor if retrieval else None,
        runs=services.runs,
    )


async def _owned(services: Services, tenant: str, thread_id: str) -> ThreadOwner:
    await services.memory.ensure_ready()
    owner = await services.memory.threads.get(thread_id)
    if owner is None or owner.tenant != tenant:
        raise NotFound(f"thread {thread_id!r} not found", param="thread_id")
    return owner


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _snapshot(snapshot: StateSnapshot) -> dict[str, Any]:
    configurable = snapshot.config.get("configurable", {})
    parent = (snapshot.parent_config or {}).get("configurable")
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "checkpoint": {
            "thread_id": configurable.get("thread_id"),
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": configurable.get("checkpoint_id"),
        },
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "parent_checkpoint": (
            {
                "thread_id": parent.get("thread_id"),
                "checkpoint_ns": parent.get("checkpoint_ns", ""),
                "checkpoint_id": parent.get("checkpoint_id"),
            }
            if parent
            else None
        ),
        "tasks": [],
        "interrupts": [],
        "checkpoint_id": configurable.get("checkpoint_id"),
        "parent_checkpoint_id": parent.get("checkpoint_id") if parent else None,
    }


@router.post("/threads", responses=errors(409))
async def create_thread(
    body: ThreadCreate, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    """A new thread (LangGraph's `threads.create`); an id already taken is 409 unless
    `if_exists` is `do_nothing`, which returns the existing thread; metadata over
    `max_metadata_bytes` is 413."""
    check_metadata(body.metadata, services.settings.limits)
    await services.memory.ensure_ready()
    thread_id = body.thread_id or new_run_id()
    owner, created = await services.memory.threads.create(thread_id, tenant, body.metadata)
    if owner.tenant != tenant or (not created and body.if_exists == "raise"):
        raise ThreadExists(f"thread {thread_id!r} already exists", param="thread_id")
    return await _thread(services, owner)


@router.post("/threads/search")
async def search_threads(
    body: ThreadSearch, services: ServicesDep, tenant: TenantDep
) -> list[dict[str, Any]]:
    """The tenant's threads, newest first, filtered by ids, metadata and status."""
    await services.memory.ensure_ready()
    found = []
    for owner in await services.memory.threads.search(tenant):
        if body.ids is not None and owner.thread_id not in body.ids:
            continue
        if any(owner.metadata.get(k) != v for k, v in (body.metadata or {}).items()):
            continue
        thread = await _thread(services, owner)
        if body.status is None or thread["status"] == body.status:
            found.append(thread)
    return found[body.offset : body.offset + body.limit]


@router.get("/threads/{thread_id}", responses=errors(404))
async def get_thread(
    thread_id: ThreadId, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    return await _thread(services, await _owned(services, tenant, thread_id))


async def _thread(services: Services, owner: ThreadOwner) -> dict[str, Any]:
    """A thread as LangGraph's server shows it: busy while a run is pending or running; then
    error if its last run failed, interrupted if its state has nodes to go, else idle."""
    graph = _graph(services, owner)
    snapshot = await graph.aget_state(_config(owner.thread_id))
    runs = await services.runs.list_runs(owner.thread_id, limit=1)
    if await services.runs.active(owner.thread_id):
        status = "busy"
    elif runs and runs[0].status == "error":
        status = "error"
    elif snapshot.next:
        status = "interrupted"
    else:
        status = "idle"
    created = _iso(owner.created_at)
    updated = snapshot.created_at or created
    return {
        "thread_id": owner.thread_id,
        "created_at": created,
        "updated_at": updated,
        "state_updated_at": updated,
        "metadata": {**owner.metadata, "user": owner.user, "graph_id": owner.workflow or None},
        "status": status,
        "config": {},
        "values": snapshot.values or None,
        "interrupts": {},
    }


def _graph(services: Services, owner: ThreadOwner) -> Any:
    # Every workflow runs the same graph over the same checkpointer; a thread made through the
    # LangGraph API has no workflow until its first run.
    spec = services.workflows.get(owner.workflow) or next(iter(services.workflows.values()))
    return spec.graph


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


@router.get("/threads/{thread_id}/state", responses=errors(404))
async def thread_state(
    thread_id: ThreadId, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    """The thread's latest state: its messages and the last turn's outputs."""
    owner = await _owned(services, tenant, thread_id)
    return _snapshot(await _graph(services, owner).aget_state(_config(thread_id)))


@router.get("/threads/{thread_id}/history", responses=errors(404))
async def thread_history(
    thread_id: ThreadId,
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> list[dict[str, Any]]:
    """The thread's checkpoints, newest first (one per turn with the default durability)."""
    return await _history(services, tenant, thread_id, limit)


@router.post("/threads/{thread_id}/history", responses=errors(404))
async def thread_history_search(
    thread_id: ThreadId, body: HistoryQuery, services: ServicesDep, tenant: TenantDep
) -> list[dict[str, Any]]:
    """As `GET`, in the form `langgraph-sdk` sends."""
    return await _history(services, tenant, thread_id, body.limit)


async def _history(
    services: Services, tenant: str, thread_id: str, limit: int
) -> list[dict[str, Any]]:
    owner = await _owned(services, tenant, thread_id)
    graph = _graph(services, owner)
    config: Any = _config(thread_id)
    return [_snapshot(s) async for s in graph.aget_state_history(config, limit=limit)]


@router.delete("/threads/{thread_id}", responses=errors(404))
async def delete_thread(
    thread_id: ThreadId, services: ServicesDep, tenant: TenantDep
) -> dict[str, Any]:
    """Forget the thread: its runs (those in flight are cancelled), its checkpoints and the
    memories learnt in it."""
    owner = await _owned(services, tenant, thread_id)
    await services.background.wait_for(tenant, thread_id=thread_id)  # memories being written
    forgetter = await _forgetter(services)
    return {"thread_id": thread_id, "deleted": await forgetter.thread(owner)}


@router.get("/users/{user}/memories", responses=errors(404))
async def user_memories(user: UserId, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """What the service remembers about the user, newest first. A user the tenant has neither
    threads nor memories of is a 404 (the same name in another tenant is another user)."""
    await services.memory.ensure_ready()
    long_term = services.memory.long_term
    memories = await long_term.list(tenant, user) if long_term is not None else []
    if not memories and not await services.memory.threads.threads_of(tenant, user):
        raise NotFound(f"user {user!r} not found", param="user")
    return {"user": user, "memories": [m.public() for m in memories]}


@router.delete("/users/{user}", responses=errors(404))
async def forget_user(user: UserId, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Forget the user: their threads, memories and uploaded documents (vectors and graph); a
    user the tenant has nothing of is a 404."""
    await services.memory.ensure_ready()
    await services.background.wait_for(tenant, user=user)  # memories being written
    forgetter = await _forgetter(services)
    deleted = await forgetter.user(tenant, user)
    if not any(deleted.values()):
        raise NotFound(f"user {user!r} not found", param="user")
    return {"user": user, "deleted": deleted}
