"""Who is calling: a bearer API key or JWT checked against the auth mode, giving the caller's
tenant, role and the subject its rate limits count against.

Checked API keys are remembered for `auth.key_cache_s` seconds, so a busy caller does not cost a
Redis round trip per request: a revoked key stops working at once on the replica that revoked it
and within that many seconds on the others.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from memory.api_keys import TENANT_PATTERN, ApiKey, ApiKeyStore, Role
from switchboard.errors import Forbidden, Unauthenticated
from switchboard.settings import AuthSettings

log = logging.getLogger(__name__)

_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    role: Role
    # What its rate limits count against (`key:<id>`, `jwt:<subject>`); None when auth is off.
    subject: str | None
    key_id: str | None = None

    def require_admin(self) -> None:
        if self.role != "admin":
            raise Forbidden("this needs an API key with the admin role")


class Authenticator:
    def __init__(self, settings: AuthSettings, keys: ApiKeyStore) -> None:
        self.settings = settings
        self._keys = keys
        self._cache: dict[str, tuple[Caller, float]] = {}
        self._jwt_key = settings.jwt_key.get_secret_value() if settings.jwt_key is not None else ""
        self._bootstrap = (
            settings.bootstrap_key.get_secret_value().encode()
            if settings.bootstrap_key is not None
            else None
        )
        if settings.mode == "off":
            log.warning(
                "AUTHENTICATION IS OFF (SWITCHBOARD_AUTH__MODE=off): anyone who can reach this "
                "service can act as any tenant by naming it in X-Switchboard-Tenant; put it "
                "behind a gateway that authenticates, or set the mode to keys or jwt"
            )

    async def caller(
        self, authorization: str | None, api_key: str | None, tenant_header: str | None
    ) -> Caller:
        """The caller of a request with these headers (`Authorization: Bearer`, or `X-Api-Key`
        as langgraph-sdk's `api_key` sends it); `Unauthenticated` when it is not one."""
        if self.settings.mode == "off":
            return Caller(tenant=tenant_header or "default", role="admin", subject=None)
        token = _bearer(authorization) if authorization or not api_key else api_key.strip()
        if self._bootstrap is not None and hmac.compare_digest(token.encode(), self._bootstrap):
            return Caller(tenant="default", role="admin", subject="bootstrap")
        if self.settings.mode == "jwt":
            return self._from_jwt(token)
        return await self._from_key(token)

    def forget(self, key_id: str) -> None:
        """Drop a (revoked) key from this replica's cache."""
        for digest, (caller, _) in list(self._cache.items()):
            if caller.key_id == key_id:
                del self._cache[digest]

    async def _from_key(self, token: str) -> Caller:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        key: ApiKey | None = await self._keys.verify(token)
        if key is None:
            raise Unauthenticated("invalid or revoked API key")
        caller = Caller(key.tenant, key.role, f"key:{key.key_id}", key.key_id)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (caller, now + self.settings.key_cache_s)
        return caller

    def _from_jwt(self, token: str) -> Caller:
        import jwt  # only in jwt mode

        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._jwt_key,
                algorithms=settings.jwt_algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        tenant = claims.get(settings.jwt_tenant_claim)
        if not isinstance(tenant, str) or not re.match(TENANT_PATTERN, tenant):
            raise Unauthenticated(
                f"the token's {settings.jwt_tenant_claim!r} claim must name a tenant "
                f"matching {TENANT_PATTERN}"
            )
        role = claims.get(settings.jwt_role_claim, "user")
        if role not in ("admin", "user"):
            role = "user"
        return Caller(tenant, role, f"jwt:{claims['sub']}")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("no API key: send `Authorization: Bearer <key>` (or `X-Api-Key`)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must read `Bearer <key>`")
    return token.strip()


async def say_if_keyless(settings: AuthSettings, keys: ApiKeyStore) -> None:
    """At start-up in keys mode, say how to make the first key when there is none (every
    request is a 401 until then)."""
    if settings.mode != "keys" or settings.bootstrap_key is not None:
        return
    try:
        if await keys.list():
            return
    except Exception as exc:  # Redis down: said elsewhere, and the check can wait
        log.debug("could not count API keys: %s", exc)
        return
    log.warning(
        "no API keys yet, so every request is refused: make one with "
        "`switchboard keys create --tenant default --role admin` (or set "
        "SWITCHBOARD_AUTH__BOOTSTRAP_KEY)"
    )
