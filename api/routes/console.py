"""The web console: a static page at `/` and its scripts and styles under `/console/`.

They are served without a caller (the page holds no data; it asks for an API key and then
calls the public API like any client) and are left out of the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def console_page() -> FileResponse:
    """The console's single page."""
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html; charset=utf-8")


def install_console(app: FastAPI) -> None:
    """Serve the console at `/`, its assets at `/console/`."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR), name="console")
