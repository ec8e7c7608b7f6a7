"""API keys: each maps a bearer token to a tenant and a role. Only a hash of the token is stored.

A token reads `sb_<key id>_<secret>`: the id finds the key's hash in one look-up, the secret
(256 random bits) is what proves it. Tokens are random, not chosen by people, so one SHA-256
is enough (a slow password hash buys nothing against 256 bits and costs every request). The
token is shown once, when the key is made; after that only its id and a prefix are known.

Redis: one hash per key (`apikey:<id>`) and one sorted set of every key id by creation time
(`apikeys`). Keys do not expire; a revoked key stays listed, marked revoked, and no longer
authenticates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from redis.asyncio import Redis

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")

_INDEX = "apikeys"
_TOKEN = re.compile(r"^sb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant: str
    role: Role
    name: str
    created_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def public(self) -> dict[str, object]:
        """What may be shown about the key: never its token or hash."""
        return {
            "key_id": self.key_id,
            "tenant": self.tenant,
            "role": self.role,
            "name": self.name,
            "prefix": f"sb_{self.key_id}_",
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(key_id: str) -> str:
    return f"apikey:{key_id}"


class ApiKeyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, tenant: str, role: Role, name: str = "") -> tuple[ApiKey, str]:
        """A new key and its token (returned only now)."""
        if not re.match(TENANT_PATTERN, tenant):
            raise ValueError(f"tenant {tenant!r} must match {TENANT_PATTERN}")
        if role not in ROLES:
            raise ValueError(f"role {role!r} must be one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(8)
        token = f"sb_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, tenant, role, name, time.time())
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                _key(key_id),
                mapping={
                    "hash": _digest(token),
                    "tenant": tenant,
                    "role": role,
                    "name": name,
                    "created_at": repr(key.created_at),
                },
            )
            pipe.zadd(_INDEX, {key_id: key.created_at})
            await pipe.execute()
        return key, token

    async def verify(self, token: str) -> ApiKey | None:
        """The key the token belongs to, or None (malformed, unknown, wrong secret, revoked)."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        fields: dict[Any, Any] = await self._redis.hgetall(_key(match.group(1)))
        if not fields:
            return None
        stored = fields[b"hash"].decode()
        if not hmac.compare_digest(stored, _digest(token)):
            return None
        key = _parse(match.group(1), fields)
        return None if key.revoked else key

    async def get(self, key_id: str) -> ApiKey | None:
        fields: dict[Any, Any] = await self._redis.hgetall(_key(key_id))
        return _parse(key_id, fields) if fields else None

    async def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of `tenant` when given), oldest first."""
        raw_ids: list[Any] = await self._redis.zrange(_INDEX, 0, -1)
        ids = [raw.decode() for raw in raw_ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(_key(key_id))
            rows = await pipe.execute()
        keys = [_parse(key_id, fields) for key_id, fields in zip(ids, rows, strict=True) if fields]
        return [k for k in keys if tenant is None or k.tenant == tenant]

    async def revoke(self, key_id: str, tenant: str | None = None) -> ApiKey | None:
        """Revoke the key (of `tenant` when given); None when there is no such key."""
        key = await self.get(key_id)
        if key is None or (tenant is not None and key.tenant != tenant):
            return None
        if not key.revoked:
            revoked_at = time.time()
            await self._redis.hset(_key(key_id), "revoked_at", repr(revoked_at))
            key = ApiKey(key.key_id, key.tenant, key.role, key.name, key.created_at, revoked_at)
        return key


def _parse(key_id: str, fields: dict[Any, Any]) -> ApiKey:
    revoked = fields.get(b"revoked_at")
    return ApiKey(
        key_id=key_id,
        tenant=fields[b"tenant"].decode(),
        role=cast(Role, fields[b"role"].decode()),
        name=fields.get(b"name", b"").decode(),
        created_at=float(fields[b"created_at"]),
        revoked_at=float(revoked) if revoked else None,
    )
