"""Where a webhook may point. A run's webhook is a URL its caller chooses and the service calls:
left open, any tenant could make the service call its own network (a cloud's metadata address,
Redis, the admin side of other services). So by default a webhook must resolve only to public
addresses; `runtime.webhook_private_hosts` allows the rest (a cluster's own receivers).

The address is checked when the run is made and again before each call, and redirects are not
followed. A name that resolves to a public address when checked and to a private one when
called (DNS rebinding) can still get through between the two: deployments that must rule that
out route webhooks through an egress proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from switchboard.errors import InvalidRequest

# A slow resolver must not hold a run's creation for long.
_RESOLVE_S = 2.0


class WebhookRefused(InvalidRequest):
    status = 422
    code = "webhook_refused"


async def check_webhook(url: str, allow_private: bool) -> None:
    """`WebhookRefused` unless `url` is http(s) and (without `allow_private`) every address its
    host resolves to is a public one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("webhook must be an http or https URL", param="webhook")
    if allow_private:
        return
    host = parts.hostname
    try:
        async with asyncio.timeout(_RESOLVE_S):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host,
                parts.port or (443 if parts.scheme == "https" else 80),
                type=socket.SOCK_STREAM,
            )
    except (OSError, TimeoutError):
        raise WebhookRefused(f"webhook host {host!r} does not resolve", param="webhook") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise WebhookRefused(
                f"webhook host {host!r} is a private address ({address}); set "
                "SWITCHBOARD_RUNTIME__WEBHOOK_PRIVATE_HOSTS=true to allow such hosts",
                param="webhook",
            )
