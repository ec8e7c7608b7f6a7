"""The service under evaluation: the real app (`api.create_app`) on a real uvicorn server on a
loopback port, in a thread with its own event loop, in front of the chosen model backend; and
one chat turn over its native SSE stream, timed as a client sees it."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from evals._data import ROOT
from switchboard.llm.local import LocalLlamaServer
from switchboard.settings import BackendConfig, Role, Settings

_ROLES = ("router", "generator", "crew", "judge", "embeddings", "extractor")


@dataclass
class Backend:
    """The models behind the service and the judge. With the scripted backend, `scripted` is
    the `tests.backends.ScriptedBackend` serving every role under the role's own name, so a
    suite scripts the router, the generator, the crew and the judge apart."""

    kind: str
    configs: list[BackendConfig]
    scripted: Any = None

    def script(self, role: str, text: str) -> None:
        """Queue the next reply of `role`'s model (scripted backend only; else nothing)."""
        if self.scripted is not None:
            reply = importlib.import_module("tests.backends.scripted").Reply
            self.scripted.enqueue(reply(text=text), role)

    def default(self, role: str, text: str) -> None:
        if self.scripted is not None:
            reply = importlib.import_module("tests.backends.scripted").Reply
            self.scripted.set_default(reply(text=text), role)


def _scripted_module() -> Any:
    # The scripted backend is a test backend (tests/backends/scripted.py), as bench/ uses it:
    # it needs a source checkout, whose root is put on the path when a console script runs.
    root = str(ROOT.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module("tests.backends.scripted")
    except ImportError as exc:
        raise RuntimeError(
            "--backend scripted needs a source checkout (tests/backends/scripted.py)"
        ) from exc


@asynccontextmanager
async def open_backend(spec: str, settings: Settings, model: str | None) -> AsyncIterator[Backend]:
    """`scripted`, `local` (the bundled SmolLM2-135M behind llama.cpp's server, started here so
    the judge can reach it too) or the base URL of an OpenAI-compatible backend (`model` for
    every role)."""
    if spec == "scripted":
        module = _scripted_module()
        server = module.ScriptedBackend()
        server.start()
        try:
            config = BackendConfig(
                name="scripted",
                base_url=server.url,
                models={Role(r): r for r in _ROLES},
            )
            backend = Backend("scripted", [config], server)
            backend.default("judge", '{"score": 5}')
            yield backend
        finally:
            server.stop()
    elif spec == "local":
        with tempfile.TemporaryDirectory(prefix="switchboard-eval-llama-") as logs:
            local = LocalLlamaServer(settings.local, Path(logs))
            await local.start()
            try:
                yield Backend("local", [local.backend])
            finally:
                await local.stop()
    elif spec.startswith(("http://", "https://")):
        config = BackendConfig(name="eval", base_url=spec, model=model or "default")  # type: ignore[arg-type]
        yield Backend("url", [config])
    elif spec == "configured":
        if not settings.llm.backends:
            raise RuntimeError("--backend configured: SWITCHBOARD_LLM__BACKENDS is empty")
        yield Backend("configured", list(settings.llm.backends))
    else:
        raise ValueError(f"unknown backend {spec!r}: scripted, local, configured or a URL")


def service_settings(settings: Settings, backend: Backend, data_dir: Path) -> Settings:
    """The settings the service is evaluated with: the environment's, with the backend chosen
    here, a fresh data folder, no authentication (the tenant is named per request) and no
    knowledge graph (its extraction needs a capable model; graph retrieval is measured by
    tests/evals/test_graph_retrieval.py)."""
    llm = settings.llm.model_copy(update={"backends": backend.configs})
    return settings.model_copy(
        update={
            "llm": llm,
            "local": settings.local.model_copy(update={"mode": "off"}),
            "server": settings.server.model_copy(update={"data_dir": data_dir}),
            "auth": settings.auth.model_copy(update={"mode": "off"}),
            "graph": settings.graph.model_copy(update={"enabled": False}),
        }
    )


@contextmanager
def serving(settings: Settings, startup_timeout: float = 180.0) -> Iterator[str]:
    """Serve the app and yield its base URL once its document store is up (or off)."""
    serving = importlib.import_module("api.serving")  # evals sits above api; imported when used
    with serving.running_service(settings, startup_timeout) as url:
        yield url


@dataclass
class Turn:
    """One turn as the client saw it."""

    route: str | None = None
    requested: str | None = None
    answer: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    ttft_s: float | None = None
    total_s: float = 0.0
    error: str | None = None
    trace_id: str | None = None


async def turn(client: httpx.AsyncClient, question: str, tenant: str, **options: Any) -> Turn:
    """POST one user message to `/v1/chat/stream` and read its events to the end."""
    body = {"messages": [{"role": "user", "content": question}], **options}
    result = Turn()
    started = time.perf_counter()
    kind = ""
    async with client.stream(
        "POST", "/v1/chat/stream", json=body, headers={"X-Switchboard-Tenant": tenant}
    ) as response:
        if response.status_code != 200:
            await response.aread()
            result.error = f"HTTP {response.status_code}: {response.text[:200]}"
            result.total_s = time.perf_counter() - started
            return result
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                continue
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            if kind == "token":
                if result.ttft_s is None:
                    result.ttft_s = time.perf_counter() - started
                result.answer += data["text"]
            elif kind == "metadata":
                result.trace_id = data.get("trace_id")
            elif kind == "route":
                result.route, result.requested = data["route"], data.get("requested")
            elif kind == "sources":
                result.sources = data.get("sources", [])
            elif kind == "retry":
                result.answer = ""  # the client discards the first answer
            elif kind == "end":
                output = data.get("output") or {}
                result.answer = output.get("answer", result.answer)
            elif kind == "error":
                result.error = data.get("message", "error")
    result.total_s = time.perf_counter() - started
    return result


async def upload_corpus(
    client: httpx.AsyncClient, files: list[tuple[str, bytes]], tenant: str, timeout: float = 900
) -> float:
    """Upload the corpus to the service (files named by their path in the corpus) and wait
    until every document is ready; the seconds it took."""
    started = time.perf_counter()
    headers = {"X-Switchboard-Tenant": tenant}
    for start in range(0, len(files), 8):
        batch = files[start : start + 8]
        response = await client.post(
            "/documents", files=[("files", (name, data)) for name, data in batch], headers=headers
        )
        if response.status_code not in (200, 202):
            raise RuntimeError(f"upload failed: HTTP {response.status_code}: {response.text[:300]}")
    deadline = time.monotonic() + timeout
    while True:
        listed = (await client.get("/documents", headers=headers)).json()
        statuses = [d["status"] for d in listed.get("documents", [])]
        if "failed" in statuses:
            raise RuntimeError(f"a document failed to ingest: {listed}")
        if len(statuses) >= len(files) and all(s == "ready" for s in statuses):
            return time.perf_counter() - started
        if time.monotonic() > deadline:
            raise RuntimeError("the corpus was not ingested in time")
        await asyncio.sleep(0.5)
