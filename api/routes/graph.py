"""The knowledge graph: entity look-up by name and an entity's neighbourhood."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import ServicesDep, TenantDep
from api.limits import check_at_most
from api.openapi import errors
from api.services import Services
from memory.graph import GraphUnavailable, KnowledgeGraph
from switchboard.errors import NotFound

router = APIRouter(prefix="/graph", tags=["graph"])


def _graph(services: Services) -> KnowledgeGraph:
    """The graph if it is up now: look-ups do not wait for it to start (503, try again)."""
    graph = services.graph.current
    if graph is None:
        if services.graph.state == "starting":
            raise GraphUnavailable("the knowledge graph is starting; try again shortly")
        raise GraphUnavailable(f"the knowledge graph is off: {services.graph.error}")
    return graph


@router.get("/entities", responses=errors(422))
async def search_entities(
    services: ServicesDep,
    tenant: TenantDep,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, description="At most `max_graph_results`.")] = 10,
) -> dict[str, Any]:
    """Entities whose names match `q` (full-text), best first; a `limit` over the setting
    `max_graph_results` is 422."""
    limits = services.settings.limits
    check_at_most(limit, limits.max_graph_results, "limit", "max_graph_results")
    graph = _graph(services)
    found = await graph.search_entities(tenant, q, limit)
    return {"entities": [e.public() for e in found]}


@router.get("/entities/{entity_id:path}", responses=errors(404, 422))
async def entity_neighbourhood(
    entity_id: Annotated[str, Path(max_length=200)],
    services: ServicesDep,
    tenant: TenantDep,
    hops: Annotated[int, Query(ge=1, description="At most `max_graph_hops` (1 or 2).")] = 1,
    limit: Annotated[int, Query(ge=1, description="At most `max_graph_results`.")] = 50,
) -> dict[str, Any]:
    """The entity, its relations up to `hops` away, and the chunks that mention what they
    reach; `hops` over `max_graph_hops` or `limit` over `max_graph_results` is 422."""
    limits = services.settings.limits
    check_at_most(hops, limits.max_graph_hops, "hops", "max_graph_hops")
    check_at_most(limit, limits.max_graph_results, "limit", "max_graph_results")
    graph = _graph(services)
    hood = await graph.neighbourhood(tenant, entity_id, hops, limit)
    if hood is None:
        raise NotFound(f"entity {entity_id!r} not found")
    return {
        "entity": hood.entity.public(),
        "facts": [{"source": f.source, "type": f.type, "target": f.target} for f in hood.facts],
        "chunks": [
            {
                "chunk_id": c.chunk_id,
                "document_id": c.document_id,
                "path": list(c.path),
                "hops": c.hops,
            }
            for c in hood.chunks
        ],
    }
