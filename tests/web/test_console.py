"""The web console in headless Chromium against the running service (auth on, the scripted
backend): the key prompt; an answer streamed token by token with its route, quality score and
trace link; documents uploaded with progress, polled until ready, deleted; an answer's sources;
the crew's timeline; stopping a run (the backend request is cancelled); a conversation continued
after a reload; labels and keyboard use; a narrow screen. Screenshots go to tests/web/screenshots/.

The tests share one service and one browser and run in this order."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.backends import Reply, ScriptedBackend
from tests.web.conftest import DESKTOP, KEY, NARROW, TRACE_URL, browser_errors, screenshot

T = TypeVar("T")
AUTH = {"Authorization": f"Bearer {KEY}"}
MANUAL = (
    "Rail manual, chapter 4. Signal lamps on the northern line are inspected every 90 days by "
    "a two-person crew, and every inspection is logged in the signal register."
)


def wait(chrome: Chrome, until: Callable[[Chrome], T], timeout: float = 15) -> T:
    result: T = WebDriverWait(chrome, timeout, poll_frequency=0.05).until(until)
    return result


def by_id(chrome: Chrome, element_id: str) -> WebElement:
    return chrome.find_element(By.ID, element_id)


def last_answer(chrome: Chrome) -> WebElement:
    return chrome.find_elements(By.CSS_SELECTOR, "#messages article.assistant")[-1]


def finished(chrome: Chrome, timeout: float = 15) -> WebElement:
    """The newest answer, once it has ended (done, stopped or failed)."""

    def ended(c: Chrome) -> WebElement | bool:
        answers = c.find_elements(By.CSS_SELECTOR, "#messages article.assistant")
        return bool(answers and answers[-1].get_attribute("data-outcome")) and answers[-1]

    answer = wait(chrome, ended, timeout)
    assert isinstance(answer, WebElement)
    return answer


def tokens_shown(answer: WebElement) -> int:
    return int(answer.get_attribute("data-tokens") or 0)


def signed_in(chrome: Chrome, url: str) -> None:
    """The console open at `url`, past the key prompt."""
    if not chrome.current_url.startswith(url):
        chrome.get(f"{url}/")
    dialog = wait(chrome, lambda c: by_id(c, "key-dialog"))
    time.sleep(0.2)  # the page's first check decides whether to ask
    if dialog.get_attribute("open") is not None:
        by_id(chrome, "key-input").send_keys(KEY, Keys.ENTER)
        wait(chrome, lambda c: by_id(c, "key-dialog").get_attribute("open") is None)


def watch_answers(chrome: Chrome) -> None:
    """Record, with the time, every piece of text added to an answer while it streams (one
    text node per token event)."""
    chrome.execute_script(
        """
        window.seen = [];
        new MutationObserver((records) => {
          const at = performance.now();
          for (const record of records) {
            if (!record.target.classList || !record.target.classList.contains("text")) continue;
            for (const node of record.addedNodes) {
              if (node.nodeType === Node.TEXT_NODE) window.seen.push({text: node.data, at});
            }
          }
        }).observe(document.getElementById("messages"), {childList: true, subtree: true});
        """
    )


def send(chrome: Chrome, text: str, route: str = "") -> None:
    """Type `text` in the message box and press Enter (the keyboard path)."""
    Select(by_id(chrome, "route")).select_by_value(route)
    box = by_id(chrome, "composer-input")
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def unlabelled(chrome: Chrome) -> list[str]:
    """Visible form controls without a label and buttons without a name."""
    found: list[str] = chrome.execute_script(
        """
        const bad = [];
        for (const el of document.querySelectorAll("input, select, textarea, button")) {
          if (!el.offsetParent && el.type !== "file") continue;
          const name = el.tagName === "BUTTON"
            ? (el.getAttribute("aria-label") || el.textContent).trim()
            : (el.getAttribute("aria-label") || [...(el.labels || [])].map(l => l.textContent).join("")).trim();
          if (!name) bad.push(el.outerHTML.slice(0, 80));
        }
        return bad;
        """
    )
    return found


def script_direct(backend: ScriptedBackend, **generator: Any) -> None:
    backend.set_default(Reply(text='{"route": "direct"}'), model="router")
    backend.set_default(Reply(**generator), model="generator")
    backend.set_default(Reply(text='{"score": 4}'), model="judge")


def test_the_key_prompt_then_an_answer_streams_token_by_token(
    console: str, browser: Chrome, backend: ScriptedBackend
) -> None:
    page = httpx.get(f"{console}/")  # the page itself needs no key; everything else does
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{console}/v1/models").status_code == 401
    script = httpx.get(f"{console}/console/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    paths = httpx.get(f"{console}/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/console")]

    browser.get(f"{console}/")
    dialog = by_id(browser, "key-dialog")
    wait(browser, lambda c: dialog.get_attribute("open") is not None)
    key_input = by_id(browser, "key-input")
    assert key_input.accessible_name == "API key"
    assert browser.switch_to.active_element == key_input  # focus goes to the prompt
    key_input.send_keys("sb_wrong_key", Keys.ENTER)
    wait(browser, lambda c: "not accepted" in by_id(c, "key-error").text)
    by_id(browser, "key-input").send_keys(KEY, Keys.ENTER)
    wait(browser, lambda c: dialog.get_attribute("open") is None)
    assert browser.execute_script("return sessionStorage.getItem('switchboard.key')") == KEY

    tokens = ["Trains", " run", " on", " rails", " every", " day."]
    script_direct(backend, tokens=tokens, gap=0.15)
    watch_answers(browser)
    send(browser, "How do trains move?")
    answer = finished(browser)

    # Every token appeared on its own, in order, as the backend sent it (150 ms apart), not
    # held back and shown at once.
    seen = browser.execute_script("return window.seen")
    assert [s["text"] for s in seen] == tokens
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(seen)]
    assert sum(gap > 75 for gap in gaps) >= len(gaps) - 1, gaps  # ms; one may bunch up
    assert seen[-1]["at"] - seen[0]["at"] > 500
    assert answer.get_attribute("data-tokens") == str(len(tokens))
    assert answer.get_attribute("data-outcome") == "done"
    assert answer.find_element(By.CSS_SELECTOR, ".badge.route").text == "direct"
    assert answer.find_element(By.CSS_SELECTOR, ".badge.quality").text == "quality 0.75"
    link = answer.find_element(By.CSS_SELECTOR, ".trace a")
    run_id = answer.get_attribute("data-run-id")
    assert run_id
    href = link.get_attribute("href") or ""
    trace_id = href.rsplit("/", 1)[1]
    assert href == TRACE_URL.format(trace_id=trace_id) and len(trace_id) == 32
    assert link.text == f"Trace {trace_id[:8]}"

    # The conversation is listed, named by its first message, and marked as the one shown.
    current = wait(
        browser, lambda c: c.find_element(By.CSS_SELECTOR, "#thread-list [aria-current]")
    )
    assert current.text == "How do trains move?"
    assert unlabelled(browser) == []
    screenshot(browser, "chat-desktop")
    assert browser_errors(browser) == []


def test_a_document_uploads_with_progress_becomes_ready_and_can_be_deleted(
    console: str, browser: Chrome, backend: ScriptedBackend, tmp_path: Path
) -> None:
    signed_in(browser, console)
    by_id(browser, "tab-documents").click()
    assert by_id(browser, "tab-documents").get_attribute("aria-pressed") == "true"
    files = by_id(browser, "upload-files")
    assert browser.switch_to.active_element == files  # the view's first control has focus
    assert files.accessible_name.startswith("Files")

    manual = tmp_path / "rail-manual.md"
    manual.write_text(f"# Rail manual\n\n{MANUAL}\n")
    scratch = tmp_path / "scratch.txt"
    scratch.write_text("Scratch\n\nA note about to be deleted, long enough for the background.\n")
    # Progress: the bar's value over time (it is hidden again when the upload is done).
    browser.execute_script(
        """
        window.progress = [];
        const bar = document.getElementById("upload-progress");
        new MutationObserver(() => window.progress.push([bar.hidden, bar.value]))
          .observe(bar, {attributes: true});
        """
    )
    files.send_keys(f"{manual}\n{scratch}")
    by_id(browser, "upload").send_keys(Keys.ENTER)

    def rows(chrome: Chrome) -> dict[str, str]:  # read at once: the rows are redrawn on polls
        found: dict[str, str] = chrome.execute_script(
            """return Object.fromEntries([...document.querySelectorAll("#document-rows tr")]
                 .map(r => [r.querySelector("th").textContent, r.dataset.status]))"""
        )
        return found

    wait(browser, lambda c: rows(c) == {"Rail manual": "ready", "Scratch": "ready"})
    assert "2 of 2 accepted" in by_id(browser, "upload-status").text
    # Over 64 bytes, each was accepted for background ingestion and polled until ready.
    listed = httpx.get(f"{console}/documents", headers=AUTH).json()["documents"]
    assert {d["title"]: d["status"] for d in listed} == {"Rail manual": "ready", "Scratch": "ready"}
    progress = browser.execute_script("return window.progress")
    assert [False, 1] in [[hidden, value] for hidden, value in progress]
    row = browser.find_element(By.CSS_SELECTOR, '#document-rows tr[data-status="ready"]')
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "ready"
    screenshot(browser, "documents-desktop")

    # Delete asks once more, then the document is gone from the list and from the service.
    scratch_id = next(d["id"] for d in listed if d["title"] == "Scratch")
    delete = browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{scratch_id}"] button.danger')
    assert delete.accessible_name == "Delete Scratch"
    delete.click()
    assert delete.text == "Confirm delete"
    delete.click()
    wait(browser, lambda c: set(rows(c)) == {"Rail manual"})
    assert httpx.get(f"{console}/documents/{scratch_id}", headers=AUTH).status_code == 404
    assert unlabelled(browser) == []
    assert browser_errors(browser) == []


def test_an_answer_from_documents_lists_its_sources(
    console: str, browser: Chrome, backend: ScriptedBackend
) -> None:
    signed_in(browser, console)
    by_id(browser, "tab-chat").click()
    by_id(browser, "new-thread").click()
    backend.set_default(Reply(text='{"route": "rag"}'), model="router")
    backend.set_default(Reply(text="Every 90 days [1].", gap=0.02), model="generator")
    backend.set_default(Reply(text='{"score": 5}'), model="judge")
    send(browser, "How often are signal lamps inspected?")
    answer = finished(browser)
    assert answer.text.count("Every 90 days [1].") == 1
    assert answer.find_element(By.CSS_SELECTOR, ".badge.route").text == "rag"
    source = answer.find_element(By.CSS_SELECTOR, ".sources details")
    summary = source.find_element(By.TAG_NAME, "summary")
    assert summary.text.startswith("[1] Rail manual")
    quote = source.find_element(By.TAG_NAME, "blockquote")
    assert not quote.is_displayed()
    summary.send_keys(Keys.ENTER)  # sources open from the keyboard too
    wait(browser, lambda c: quote.is_displayed())
    assert "inspected every 90 days" in quote.text
    screenshot(browser, "chat-sources-desktop")

    # "Show in documents" leads to the document's row.
    source.find_element(By.CSS_SELECTOR, "button").click()
    row = wait(browser, lambda c: c.find_element(By.CSS_SELECTOR, "#document-rows tr.highlight"))
    assert row.find_element(By.TAG_NAME, "th").text == "Rail manual"
    by_id(browser, "tab-chat").click()
    assert browser_errors(browser) == []


def test_the_crew_timeline_shows_each_agent_at_work(
    console: str, browser: Chrome, backend: ScriptedBackend
) -> None:
    signed_in(browser, console)
    by_id(browser, "new-thread").click()
    call = {"function": {"name": "search_documents", "arguments": '{"query": "lamps"}'}}
    for reply in (
        Reply(tool_calls=[call]),
        Reply(text="- Lamps are inspected every 90 days."),
        Reply(text="Signal lamps are inspected every 90 days.", gap=0.02),
        Reply(text="APPROVED"),
    ):
        backend.enqueue(reply, "crew")
    backend.set_default(Reply(text='{"score": 5}'), model="judge")
    send(browser, "Write a short report on signal lamps.", route="crew")
    answer = finished(browser, timeout=60)
    assert answer.get_attribute("data-outcome") == "done", answer.text
    steps = [
        (item.get_attribute("data-agent"), item.get_attribute("data-type"))
        for item in answer.find_elements(By.CSS_SELECTOR, "ol.crew li")
    ]
    assert steps == [
        ("researcher", "task_started"),
        ("researcher", "tool_call"),
        ("researcher", "tool_result"),
        ("researcher", "task_finished"),
        ("writer", "task_started"),
        ("writer", "task_finished"),
        ("reviewer", "task_started"),
        ("reviewer", "task_finished"),
        ("reviewer", "verdict"),
        ("crew", "crew_finished"),
    ]
    timeline = answer.find_element(By.CSS_SELECTOR, "ol.crew")
    assert timeline.accessible_name == "Crew progress"
    assert "Reviewer approved the draft" in timeline.text
    assert answer.find_element(By.CSS_SELECTOR, ".text").text == (
        "Signal lamps are inspected every 90 days."
    )
    assert answer.find_element(By.CSS_SELECTOR, ".badge.route").text == "crew"
    screenshot(browser, "chat-crew-desktop")
    assert browser_errors(browser) == []


def test_stop_cancels_the_run_and_its_backend_request(
    console: str, browser: Chrome, backend: ScriptedBackend
) -> None:
    signed_in(browser, console)
    by_id(browser, "new-thread").click()
    script_direct(backend, text=" ".join(f"word{i}" for i in range(60)), gap=0.1)
    stop = by_id(browser, "stop")
    assert not stop.is_enabled()
    send(browser, "Talk for a long time.")
    wait(browser, lambda c: tokens_shown(last_answer(c)) >= 3)
    assert not by_id(browser, "send").is_enabled()

    # From the message box, Tab reaches the Stop button (the disabled Send is skipped).
    for _ in range(3):
        if browser.switch_to.active_element == stop:
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == stop
    stopped_at = time.monotonic()
    stop.send_keys(Keys.ENTER)

    answer = finished(browser, timeout=10)
    assert answer.get_attribute("data-outcome") == "stopped"
    assert "Stopped" in answer.find_element(By.CSS_SELECTOR, ".status").text
    wait(browser, lambda c: backend.cancellations, timeout=5)
    assert backend.cancellations[0] - stopped_at < 2.0
    shown = tokens_shown(answer)
    assert 3 <= shown < 60
    time.sleep(0.4)  # nothing more arrives
    assert tokens_shown(answer) == shown
    assert by_id(browser, "send").is_enabled() and not stop.is_enabled()
    # The run is over: interrupted, through the same cancellation a LangGraph client uses.
    run_id = answer.get_attribute("data-run-id")
    thread = browser.execute_script("return localStorage.getItem('switchboard.thread')")
    run = httpx.get(f"{console}/threads/{thread}/runs/{run_id}", headers=AUTH).json()
    assert run["status"] == "interrupted"
    assert browser_errors(browser) == []


def test_a_failed_run_shows_its_error(
    console: str, browser: Chrome, backend: ScriptedBackend
) -> None:
    signed_in(browser, console)
    by_id(browser, "new-thread").click()
    script_direct(backend, failure="http500")
    send(browser, "Will this work?")
    answer = finished(browser)
    assert answer.get_attribute("data-outcome") == "failed"
    problem = answer.find_element(By.CSS_SELECTOR, ".error")
    assert problem.get_attribute("role") == "alert" and problem.text
    assert by_id(browser, "send").is_enabled()
    assert browser_errors(browser) == []


def test_a_conversation_continues_after_a_reload(
    console: str, browser: Chrome, backend: ScriptedBackend
) -> None:
    signed_in(browser, console)
    by_id(browser, "new-thread").click()
    script_direct(backend, text="The capital of France is Paris.")
    send(browser, "What is the capital of France?")
    finished(browser)
    thread = browser.execute_script("return localStorage.getItem('switchboard.thread')")

    browser.refresh()
    # The key is kept for the tab's session; the conversation shown before is shown again.
    assert by_id(browser, "key-dialog").get_attribute("open") is None
    wait(browser, lambda c: len(c.find_elements(By.CSS_SELECTOR, "#messages article")) == 2)
    assert last_answer(browser).find_element(By.CSS_SELECTOR, ".badge.route").text == "direct"
    # ... and picked from the list of conversations.
    by_id(browser, "new-thread").click()
    wait(browser, lambda c: not c.find_elements(By.CSS_SELECTOR, "#messages article"))
    browser.find_element(By.CSS_SELECTOR, f'#thread-list button[data-thread="{thread}"]').click()
    wait(browser, lambda c: len(c.find_elements(By.CSS_SELECTOR, "#messages article")) == 2)
    texts = [
        a.find_element(By.CSS_SELECTOR, ".text").text
        for a in browser.find_elements(By.CSS_SELECTOR, "#messages article")
    ]
    assert texts == ["What is the capital of France?", "The capital of France is Paris."]

    backend.reset()
    script_direct(backend, text="About 2.1 million people.")
    send(browser, "And how many people live there?")
    answer = finished(browser)
    assert answer.find_element(By.CSS_SELECTOR, ".text").text == "About 2.1 million people."
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages article")) == 4
    # The service continued the same thread: the model saw the earlier turn.
    prompt = json.dumps(next(r for r in backend.requests if r.get("model") == "generator"))
    assert "The capital of France is Paris." in prompt
    state = httpx.get(f"{console}/threads/{thread}/state", headers=AUTH).json()
    assert len(state["values"]["messages"]) == 4
    assert browser_errors(browser) == []


@pytest.mark.parametrize("view", ["chat", "documents"])
def test_a_narrow_screen(console: str, browser: Chrome, view: str) -> None:
    signed_in(browser, console)
    browser.set_window_size(*NARROW)
    try:
        by_id(browser, f"tab-{view}").click()
        wait(browser, lambda c: by_id(c, f"{view}-view").is_displayed())
        time.sleep(0.3)  # the documents list is fetched on opening the view
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{overflow}px wider than the screen"
        first = "composer-input" if view == "chat" else "upload-files"
        assert by_id(browser, first).is_displayed()
        assert unlabelled(browser) == []
        screenshot(browser, f"{view}-narrow")
    finally:
        browser.set_window_size(*DESKTOP)
        by_id(browser, "tab-chat").click()
    assert browser_errors(browser) == []
