"""Rate limits per caller (an API key, or a JWT's subject), kept in Redis so that every replica
counts against the same budget.

Requests and tokens per minute are GCRA buckets (the "generic cell rate algorithm": one stored
time per bucket, the theoretical arrival time), which allow a burst of a whole minute's budget
and then one request every 60/rpm seconds. Tokens are only known once a run has used them, so
they are charged afterwards: a run is admitted while the caller's token bucket is not overdrawn,
and its tokens are charged when it ends (the next run waits out any debt). Time is Redis's own
clock (`TIME`), so replicas with skewed clocks agree.

Open streams per caller are a sorted set of stream ids scored by when their lease ends: a
stream renews its lease while it is open, so the slots of a replica that died free themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from switchboard.errors import RateLimited
from switchboard.settings import RateLimitSettings

log = logging.getLogger(__name__)

_WINDOW_MS = 60_000
_STREAM_LEASE_MS = 60_000
_STREAM_RENEW_S = 20.0

# KEYS: requests bucket, tokens bucket. ARGV: requests per minute, tokens per minute (0: not
# checked), window ms.
# Times are whole milliseconds (a float would be written to Redis in Lua's short notation).
# Returns {0} when admitted (and counts the request), {1, wait ms} over the request budget,
# {2, wait ms} over the token budget.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local tpm = tonumber(ARGV[2])
if tpm > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or now)
  if tat - now > window then return {2, tat - now - window} end
end
local rpm = tonumber(ARGV[1])
if rpm > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
  local after = tat + math.ceil(window / rpm)
  if after - now > window then return {1, after - now - window} end
  redis.call('SET', KEYS[1], after, 'PX', math.ceil(after - now))
end
return {0}
"""

# KEYS: tokens bucket. ARGV: tokens used, tokens per minute, window ms.
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local after = tat + math.ceil(tonumber(ARGV[1]) * tonumber(ARGV[3]) / tonumber(ARGV[2]))
redis.call('SET', KEYS[1], after, 'PX', math.ceil(after - now))
return 1
"""

# KEYS: the caller's open streams. ARGV: stream id, cap, lease ms.
# Returns 1 when the stream may open (and holds a slot), 0 when the cap is reached.
_OPEN_STREAM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_RENEW_STREAM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


class RateLimiter:
    def __init__(self, redis: Redis, settings: RateLimitSettings) -> None:
        self._redis = redis
        self.settings = settings
        self._admit = redis.register_script(_ADMIT)
        self._charge = redis.register_script(_CHARGE)
        self._open = redis.register_script(_OPEN_STREAM)
        self._renew = redis.register_script(_RENEW_STREAM)

    async def admit(self, subject: str) -> None:
        """Count one request of `subject`; `RateLimited`, with when to try again, when over."""
        await self._check(subject, self.settings.requests_per_minute, 0)

    async def check_tokens(self, subject: str) -> None:
        """Before a run starts: `RateLimited` while `subject`'s token budget is overdrawn."""
        await self._check(subject, 0, self.settings.tokens_per_minute)

    async def _check(self, subject: str, rpm: int, tpm: int) -> None:
        limits = self.settings
        if rpm == 0 and tpm == 0:
            return
        result: list[Any] = await self._admit(
            keys=[f"ratelimit:req:{subject}", f"ratelimit:tok:{subject}"],
            args=[rpm, tpm, _WINDOW_MS],
        )
        if result[0] == 1:
            raise RateLimited(
                f"more than {limits.requests_per_minute} requests a minute "
                "(SWITCHBOARD_RATE_LIMITS__REQUESTS_PER_MINUTE)",
                retry_after=_seconds(result[1]),
            )
        if result[0] == 2:
            raise RateLimited(
                f"more than {limits.tokens_per_minute} tokens a minute "
                "(SWITCHBOARD_RATE_LIMITS__TOKENS_PER_MINUTE)",
                retry_after=_seconds(result[1]),
            )

    async def charge_tokens(self, subject: str, tokens: int) -> None:
        """Charge the tokens a finished run of `subject` used."""
        tpm = self.settings.tokens_per_minute
        if tpm == 0 or tokens <= 0:
            return
        await self._charge(keys=[f"ratelimit:tok:{subject}"], args=[tokens, tpm, _WINDOW_MS])

    @contextlib.asynccontextmanager
    async def stream_slot(self, subject: str) -> AsyncIterator[None]:
        """Hold one of `subject`'s stream slots while the block runs; `RateLimited` when all
        are taken."""
        cap = self.settings.concurrent_streams
        if cap == 0:
            yield
            return
        key = f"ratelimit:streams:{subject}"
        stream_id = secrets.token_hex(8)
        if not await self._open(keys=[key], args=[stream_id, cap, _STREAM_LEASE_MS]):
            raise RateLimited(
                f"more than {cap} open streams (SWITCHBOARD_RATE_LIMITS__CONCURRENT_STREAMS)",
                retry_after=1,
            )
        renewing = asyncio.create_task(self._renewing(key, stream_id))
        try:
            yield
        finally:
            renewing.cancel()
            # Best effort: a slot not given back frees itself when its lease ends.
            try:
                await self._redis.zrem(key, stream_id)
            except Exception as exc:
                log.warning("could not free a stream slot of %s: %s", subject, exc)

    async def _renewing(self, key: str, stream_id: str) -> None:
        while True:
            await asyncio.sleep(_STREAM_RENEW_S)
            try:
                await self._renew(keys=[key], args=[stream_id, _STREAM_LEASE_MS])
            except Exception as exc:
                log.warning("could not renew a stream slot: %s", exc)


def _seconds(milliseconds: float) -> int:
    return max(1, math.ceil(float(milliseconds) / 1000))
