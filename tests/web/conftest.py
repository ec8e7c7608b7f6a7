"""The web console's fixtures: one service with authentication on (keys) and tracing to a
Langfuse stand-in, and one headless Chromium (Debian's `chromium` + `chromium-driver`, driven
through Selenium's WebDriver) for the module."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.backends import ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.langfuse_sink import LangfuseSink
from tests.service_runner import running_service

KEY = "web-console-bootstrap-key-0123456789"
TRACE_URL = "https://langfuse.example/traces/{trace_id}"
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = (1280, 860)
NARROW = (390, 844)  # a phone


@pytest.fixture(scope="module")
def console(scripted_session: ScriptedBackend) -> Iterator[str]:
    """The service, with keys required (the bootstrap key is an admin of `default`), small
    uploads ingested in the background (so the console polls their status), traces exported to
    a loopback Langfuse stand-in and linked in the stream's metadata."""
    sink = LangfuseSink()
    settings = make_settings(
        backend_entry("primary", scripted_session),
        auth={"mode": "keys", "bootstrap_key": KEY},
        retrieval={"background_bytes": 64},
        tracing={
            # A key of its own: the SDK keeps one client per public key in a process.
            "public_key": f"pk-lf-{uuid.uuid4().hex}",
            "secret_key": "sk-lf-test",
            "base_url": sink.url,
            "trace_url": TRACE_URL,
            "flush_interval_s": 0.1,
            "export_timeout_s": 1,
            "shutdown_wait_s": 1,
        },
    )
    try:
        with running_service(settings) as url:
            yield url
    finally:
        sink.close()


def _chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "tests/web need Debian's chromium and chromium-driver (scripts/setup.sh installs "
            "them: apt-get install chromium chromium-driver)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium at a desktop size, its console log kept for `browser_errors`."""
    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()


def browser_errors(chrome: webdriver.Chrome) -> list[dict[str, Any]]:
    """The page's console errors since the last call (a blocked script or style under the
    Content-Security-Policy shows here), but the 401s the key prompt provokes on purpose."""
    return [
        entry
        for entry in chrome.get_log("browser")  # type: ignore[no-untyped-call]
        if entry["level"] == "SEVERE" and "401 (Unauthorized)" not in entry["message"]
    ]


def screenshot(chrome: webdriver.Chrome, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert chrome.save_screenshot(str(path)), f"no screenshot {path}"
    return path
