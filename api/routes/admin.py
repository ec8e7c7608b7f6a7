"""API keys, managed by a tenant's admins: each admin manages the keys of its own tenant only
(another tenant's key id is a 404). Keys of any tenant are made from the command line
(`switchboard keys`), by whoever can reach Redis."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, ServicesDep
from api.openapi import errors
from switchboard.errors import NotFound

router = APIRouter(prefix="/admin", tags=["admin"], responses=errors(403))  # admins only

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key's id.")]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "user"] = "user"
    name: str = Field(default="", max_length=200, description="What the key is for.")


class KeyOut(BaseModel):
    key_id: str
    tenant: str
    role: Literal["admin", "user"]
    name: str
    prefix: str = Field(description="How the key's token starts, to recognise it.")
    created_at: float
    revoked_at: float | None


class KeyCreated(KeyOut):
    token: str = Field(description="The bearer token: shown this once, never stored.")


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, services: ServicesDep, caller: AdminDep) -> dict[str, Any]:
    """A new key of the caller's tenant; its token is in this answer and nowhere else."""
    key, token = await services.api_keys.create(caller.tenant, body.role, body.name)
    return {**key.public(), "token": token}


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(services: ServicesDep, caller: AdminDep) -> list[dict[str, Any]]:
    """The tenant's keys, revoked ones included, oldest first."""
    return [key.public() for key in await services.api_keys.list(caller.tenant)]


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=errors(404))
async def revoke_key(key_id: KeyId, services: ServicesDep, caller: AdminDep) -> dict[str, Any]:
    """Revoke a key: it stops authenticating at once on this replica, within
    `SWITCHBOARD_AUTH__KEY_CACHE_S` on the others."""
    key = await services.api_keys.revoke(key_id, caller.tenant)
    if key is None:
        raise NotFound(f"no key {key_id!r}", param="key_id")
    services.auth.forget(key_id)
    return key.public()
