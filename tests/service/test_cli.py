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
