"""The FastAPI application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import require_caller
from api.errors import BodySizeLimit, install_error_handlers
from api.metrics import RequestMetrics
from api.openapi import errors, install_openapi
from api.routes import (
    admin,
    assistants,
    documents,
    graph,
    health,
    native,
    openai,
    runs,
    threads,
)
from api.routes.console import install_console
from api.services import open_services
from api.web import SecurityHeaders, install_cors
from api.workers import draining_on_sigterm, worker_running
from switchboard import logs
from switchboard.settings import Settings, load_settings


def create_app(settings: Settings) -> FastAPI:
    """The app for `settings`; its lifespan starts and stops every dependency."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services, worker_running(services):
            app.state.services = services
            # What start-up made (modules, clients, settings: most of the heap) lives as long
            # as the process: kept out of the collector's sight, a full collection scans only
            # what requests left behind (measured: 106 ms each before, in docs/benchmarks.md).
            gc.collect()
            gc.freeze()
            # A young collection every 10,000 allocations rather than 700: a run allocates
            # thousands of short-lived objects, most already freed when the next one comes.
            gc.set_threshold(10_000, 10, 10)
            with draining_on_sigterm(services):
                yield

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        summary="Multi-agent orchestration with OpenAI-compatible streaming.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    # Every route but the operational ones (/healthz, /readyz, /metrics) needs a caller: 401
    # without one, 429 over its rate limit, 503 while the stores (API keys included) are down.
    # Each route declares it (`require_caller` checks). The runs first: the routes are matched
    # in order, and theirs are the most called.
    for routes in (runs, openai, native, threads, assistants, documents, graph, admin):
        require_caller(routes.router)
        app.include_router(routes.router, responses=errors(401, 429, 503))
    app.include_router(health.router)
    install_console(app)  # the web console's static page: no caller needed to load it
    uploads = settings.retrieval
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.limits.max_body_bytes,
        # Multipart framing on top of the files themselves.
        overrides={
            "/documents": (
                uploads.max_upload_bytes * uploads.max_upload_files + 65536,
                "SWITCHBOARD_RETRIEVAL__MAX_UPLOAD_BYTES x SWITCHBOARD_RETRIEVAL__MAX_UPLOAD_FILES",
            )
        },
    )
    # Outside the body limit, so that a 413 carries CORS and security headers too.
    install_cors(app, settings.auth.cors_origins)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)  # the outermost: refused bodies are counted too
    return app


def app_from_environment() -> FastAPI:
    """The app for the settings in the environment (uvicorn's factory for `switchboard serve`),
    with this process's logging set up."""
    settings = load_settings()
    logs.configure(settings.server.log_level, settings.server.log_format)
    return create_app(settings)
