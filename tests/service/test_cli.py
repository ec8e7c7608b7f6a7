"""The `switchboard` command."""

import os
import subprocess
import sys

from tests.backends import Reply, ScriptedBackend


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_chat_streams_the_answer(service: str, backend: ScriptedBackend) -> None:
    backend.set_default(Reply(text="Hello from the CLI test"), model="generator")
    done = _cli("chat", "--url", service, "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello from the CLI test\n"


def test_chat_without_a_service_says_so() -> None:
    done = _cli("chat", "--url", "http://127.0.0.1:9", "hi")
    assert done.returncode == 1
    assert "no service at http://127.0.0.1:9" in done.stderr


def test_bad_settings_stop_start_up_with_a_clear_message() -> None:
    done = _cli("serve", env={"SWITCHBOARD_LLM__CONNECT_TIMEOUT": "soon"})
    assert done.returncode == 2
    assert "SWITCHBOARD_LLM__CONNECT_TIMEOUT: Input should be a valid number" in done.stderr


def test_ingest_uploads_a_folder_with_a_progress_bar(service: str, tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\n\nThe first note about the hydro plant.\n")
    (tmp_path / "sub" / "b.txt").write_text("Second note\n\nAbout the observatory dome.\n")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    done = _cli("ingest", "--url", service, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "2 of 2 files ingested" in done.stdout
    assert "[##############################] 2/2" in done.stderr


def test_ingest_reports_a_rejected_file(service: str, tmp_path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text("   \n")
    done = _cli("ingest", "--url", service, str(empty))
    assert done.returncode == 1
    assert "failed: empty.md: the document has no text" in done.stderr
    assert "0 of 1 files ingested" in done.stdout
