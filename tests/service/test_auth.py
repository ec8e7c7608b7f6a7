"""Authentication: API keys (hashed in Redis, made with the CLI or by a tenant's admin), the
bootstrap key, JWTs from an identity provider, and auth off only when asked for, loudly."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends
from redis import Redis

from api.deps import ServicesDep, get_caller, require_caller
from switchboard.settings import AuthSettings
from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = "bootstrap-key-for-tests-0123456789"
TURN = {"model": "switchboard", "messages": [{"role": "user", "content": "hi"}]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _keys_settings(backend: ScriptedBackend, **groups: Any) -> Any:
    return make_settings(
        backend_entry("p", backend),
        auth={"mode": "keys", "bootstrap_key": BOOTSTRAP, **groups.pop("auth", {})},
        **groups,
    )


def test_requests_without_a_valid_key_are_401_and_operations_stay_open(
    backend: ScriptedBackend,
) -> None:
    with running_service(_keys_settings(backend)) as url:
        for headers in ({}, {"Authorization": "Basic abc"}, _bearer("sb_0123456789abcdef_x")):
            response = httpx.post(f"{url}/v1/chat/completions", json=TURN, headers=headers)
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["type"] == "authentication_error"
        # The LangGraph paths answer in their protocol's shape.
        refused = httpx.post(f"{url}/threads", json={})
        assert refused.status_code == 401 and "detail" in refused.json()
        # Naming a tenant is no way in.
        named = httpx.get(f"{url}/documents", headers={"X-Switchboard-Tenant": "default"})
        assert named.status_code == 401
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 200, path


def test_every_route_but_the_operational_ones_needs_a_caller(backend: ScriptedBackend) -> None:
    """Each route declares its caller (no router does it for them, `api.deps.require_caller`):
    none may be left open by forgetting."""
    operational = {"/healthz", "/readyz", "/metrics"}
    with running_service(_keys_settings(backend)) as url:
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]
        assert len(paths) > 25 and operational <= set(paths)
        for template, operations in paths.items():
            if template in operational:
                continue
            path = re.sub(r"\{[^}]+\}", "x", template)
            for method in operations:
                body = {} if method in ("post", "put", "patch") else None
                response = httpx.request(method, f"{url}{path}", json=body)
                assert response.status_code == 401, (method, template, response.text)


def test_a_router_with_a_route_that_takes_no_caller_is_refused() -> None:
    router = APIRouter()

    @router.get("/open")
    async def open_route(services: ServicesDep) -> None: ...

    with pytest.raises(RuntimeError, match="/open"):
        require_caller(router)
    require_caller(APIRouter(dependencies=[Depends(get_caller)]))


def test_an_admin_makes_lists_and_revokes_its_tenant_s_keys(
    backend: ScriptedBackend, redis_url: str
) -> None:
    settings = _keys_settings(backend, redis={"url": redis_url})
    with running_service(settings) as url:
        admin = _bearer(BOOTSTRAP)
        made = httpx.post(f"{url}/admin/keys", json={"name": "ci", "role": "user"}, headers=admin)
        assert made.status_code == 201, made.text
        key = made.json()
        assert key["tenant"] == "default" and key["role"] == "user"
        token = key["token"]
        assert token.startswith(key["prefix"])

        # Only a hash is stored: the token appears nowhere in Redis.
        client = Redis.from_url(redis_url)
        stored = client.hgetall(f"apikey:{key['key_id']}")
        assert stored and all(token.encode() not in v for v in stored.values())
        client.close()

        user = _bearer(token)
        answered = httpx.post(f"{url}/v1/chat/completions", json=TURN, headers=user)
        assert answered.status_code == 200, answered.text
        # A user key is no admin.
        assert httpx.get(f"{url}/admin/keys", headers=user).status_code == 403
        listed = httpx.get(f"{url}/admin/keys", headers=admin).json()
        mine = next(k for k in listed if k["key_id"] == key["key_id"])
        assert "token" not in mine and "hash" not in mine and mine["revoked_at"] is None

        revoked = httpx.delete(f"{url}/admin/keys/{key['key_id']}", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        # At once on the replica that revoked it, though it was cached by the turn above.
        assert httpx.post(f"{url}/v1/chat/completions", json=TURN, headers=user).status_code == 401
        again = httpx.delete(f"{url}/admin/keys/{'0' * 16}", headers=admin)
        assert again.status_code == 404


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_made_with_the_cli_before_the_service_starts_work_once_it_runs(
    backend: ScriptedBackend,
) -> None:
    data_dir = tempfile.mkdtemp(prefix="switchboard-keys-")
    env = {"SWITCHBOARD_SERVER__DATA_DIR": data_dir}
    made = _cli("keys", "create", "--tenant", "team-a", "--role", "admin", "--name", "ops", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("sb_") and "not shown again" in made.stderr
    listed = _cli("keys", "list", env=env)
    key_id = token.split("_")[1]
    assert key_id in listed.stdout and "team-a" in listed.stdout and "active" in listed.stdout
    refused = _cli("keys", "create", "--tenant", "no spaces", env=env)
    assert refused.returncode == 2 and "tenant" in refused.stderr

    settings = make_settings(
        backend_entry("p", backend), auth={"mode": "keys"}, server={"data_dir": data_dir}
    )
    with running_service(settings) as url:
        keys = httpx.get(f"{url}/admin/keys", headers=_bearer(token))
        assert keys.status_code == 200
        assert [k["key_id"] for k in keys.json()] == [key_id]  # team-a's only
        # The CLI finds the running service's Redis (the URL file of its embedded server).
        made = _cli("keys", "create", "--tenant", "team-a", env=env)
        user = made.stdout.strip()
        assert httpx.get(f"{url}/documents", headers=_bearer(user)).status_code == 200
        backend.set_default(Reply(text="Hello, key holder"), model="generator")
        chat = _cli("chat", "--url", url, "hi", env={**env, "SWITCHBOARD_AUTH__CLI_KEY": user})
        assert chat.returncode == 0 and chat.stdout == "Hello, key holder\n", chat.stderr
        keyless = _cli("chat", "--url", url, "hi", env=env)
        assert keyless.returncode == 1 and "HTTP 401" in keyless.stderr
        assert _cli("keys", "revoke", user.split("_")[1], env=env).returncode == 0
        assert "revoked" in _cli("keys", "list", "--tenant", "team-a", env=env).stdout
    assert _cli("keys", "revoke", "0" * 16, env=env).returncode == 1


def test_a_revoked_key_stops_working_on_other_replicas_within_the_cache_time(
    backend: ScriptedBackend, redis_url: str
) -> None:
    settings = _keys_settings(backend, redis={"url": redis_url}, auth={"key_cache_s": 0.5})
    with running_service(settings) as url:
        token = httpx.post(f"{url}/admin/keys", json={}, headers=_bearer(BOOTSTRAP)).json()["token"]
        assert httpx.get(f"{url}/documents", headers=_bearer(token)).status_code == 200
        # Revoked behind this replica's back (as another replica or the CLI would).
        key_id = token.split("_")[1]
        client = Redis.from_url(redis_url)
        client.hset(f"apikey:{key_id}", "revoked_at", repr(time.time()))
        client.close()
        time.sleep(0.6)
        assert httpx.get(f"{url}/documents", headers=_bearer(token)).status_code == 401


def _rsa_pair() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def test_jwt_mode_takes_the_tenant_and_role_from_the_identity_provider_s_token(
    backend: ScriptedBackend,
) -> None:
    private, public = _rsa_pair()
    auth = {
        "mode": "jwt",
        "jwt_key": public,
        "jwt_issuer": "https://idp.example",
        "jwt_audience": "switchboard",
    }
    now = int(time.time())
    good = {
        "iss": "https://idp.example",
        "aud": "switchboard",
        "sub": "ada",
        "exp": now + 300,
        "tenant": "team-j",
    }

    def token(claims: dict[str, Any], key: Any = private) -> dict[str, str]:
        return _bearer(jwt.encode(claims, key, algorithm="RS256"))

    with running_service(make_settings(backend_entry("p", backend), auth=auth)) as url:
        made = httpx.post(f"{url}/threads", json={"metadata": {"a": 1}}, headers=token(good)).json()
        thread = made["thread_id"]
        assert httpx.get(f"{url}/threads/{thread}", headers=token(good)).status_code == 200
        other_tenant = token({**good, "tenant": "team-k"})
        assert httpx.get(f"{url}/threads/{thread}", headers=other_tenant).status_code == 404
        # A user of the tenant is no admin unless the token says so.
        assert httpx.get(f"{url}/admin/keys", headers=token(good)).status_code == 403
        admin = token({**good, "role": "admin"})
        assert httpx.get(f"{url}/admin/keys", headers=admin).status_code == 200
        other_private, _ = _rsa_pair()
        for bad in (
            token({**good, "exp": now - 10}),
            token({**good, "aud": "someone-else"}),
            token({**good, "iss": "https://evil.example"}),
            token({k: v for k, v in good.items() if k != "tenant"}),
            token({**good, "tenant": "no spaces allowed"}),
            token(good, other_private),
            _bearer(jwt.encode(good, "a-shared-secret-of-enough-length", algorithm="HS256")),
        ):
            response = httpx.get(f"{url}/threads/{thread}", headers=bad)
            assert response.status_code == 401, response.text


def test_auth_off_is_explicit_and_logged_loudly(
    backend: ScriptedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="api.auth"),
        running_service(make_settings(backend_entry("p", backend), auth={"mode": "off"})) as url,
    ):
        headers = {"X-Switchboard-Tenant": "named"}
        assert httpx.post(f"{url}/threads", json={}, headers=headers).status_code == 200
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)


def test_the_default_mode_is_keys() -> None:
    assert AuthSettings().mode == "keys"


async def test_langgraph_sdk_s_api_key_authenticates(backend: ScriptedBackend) -> None:
    from langgraph_sdk import get_client

    with running_service(_keys_settings(backend)) as url:
        client = get_client(url=url, api_key=BOOTSTRAP)
        thread = await client.threads.create()
        assert (await client.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]
        await client.aclose()
        stranger = get_client(url=url, api_key="sb_0123456789abcdef_" + "x" * 43)
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await stranger.threads.create()
        assert refused.value.response.status_code == 401
        await stranger.aclose()
