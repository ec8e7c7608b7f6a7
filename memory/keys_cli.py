"""`switchboard keys create|list|revoke`: API keys managed straight in Redis, for operators.

Redis is the configured one (`SWITCHBOARD_REDIS__URL`); else the embedded server of a service
running on the same data folder; else the embedded server is started on that folder for the
command (the service finds the keys there when it starts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from memory.api_keys import ApiKey, ApiKeyStore, Role
from memory.redis_server import URL_FILE, EmbeddedRedis
from switchboard.settings import Settings


def add_arguments(keys: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; its token is printed once")
    create.add_argument("--tenant", default="default")
    create.add_argument("--role", choices=["admin", "user"], default="user")
    create.add_argument("--name", default="", help="what the key is for")
    listing = actions.add_parser("list", help="every key (of one tenant with --tenant)")
    listing.add_argument("--tenant", default=None)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        async with _redis(settings) as redis:
            store = ApiKeyStore(redis)
            if args.action == "create":
                role: Role = args.role
                try:
                    key, token = await store.create(args.tenant, role, args.name)
                except ValueError as exc:
                    print(f"switchboard: {exc}", file=sys.stderr)
                    return 2
                print(token)
                print(
                    f"key {key.key_id} ({key.role}, tenant {key.tenant}): keep the token above; "
                    "it is not shown again",
                    file=sys.stderr,
                )
            elif args.action == "list":
                for key in await store.list(args.tenant):
                    print(_row(key))
            else:
                revoked = await store.revoke(args.key_id)
                if revoked is None:
                    print(f"switchboard: no key {args.key_id!r}", file=sys.stderr)
                    return 1
                print(_row(revoked))
    except (RedisError, OSError) as exc:
        print(f"switchboard: Redis cannot be reached: {exc}", file=sys.stderr)
        return 1
    return 0


def _row(key: ApiKey) -> str:
    created = datetime.datetime.fromtimestamp(key.created_at, datetime.UTC)
    state = "revoked" if key.revoked else "active"
    return (
        f"{key.key_id}  {key.tenant:<20} {key.role:<5} {state:<7} "
        f"{created:%Y-%m-%d %H:%M}  {key.name}"
    )


@contextlib.asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    url = settings.redis.url
    folder = settings.server.data_dir / "redis"
    embedded: EmbeddedRedis | None = None
    if url is None and (folder / URL_FILE).exists():
        url = (folder / URL_FILE).read_text().strip()
        if not await _answers(url):  # left behind by a service that did not stop cleanly
            url = None
    if url is None:
        embedded = EmbeddedRedis(folder)
        await embedded.start()
        url = embedded.url
    redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        yield redis
    finally:
        await redis.aclose()
        if embedded is not None:
            await embedded.stop()


async def _answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()
