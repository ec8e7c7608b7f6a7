"""`switchboard eval` itself, as CI runs it: every suite against the scripted backend, through
the command line, with the gate on; it prints the table and writes one JSON file per suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_switchboard_eval_runs_every_suite_with_the_scripted_backend(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "eval", "--suite", "all", "--backend",
         "scripted", "--limit", "3", "--gate", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "SWITCHBOARD_SERVER__DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    results = {suite: json.loads((tmp_path / f"{suite}.json").read_text()) for suite in
               ("routing", "retrieval", "answers")}  # fmt: skip
    routing = results["routing"]["metrics"]
    assert routing["accuracy"] == 1.0 and routing["classified"] == 1.0
    assert results["retrieval"]["questions"] >= 50
    assert results["retrieval"]["metrics"]["mrr"] > 0.5
    answers = results["answers"]
    assert answers["questions"] == 3 and answers["metrics"]["errors"] == 0
    assert answers["metrics"]["relevance"] > 0 and answers["metrics"]["document_recall"] > 0
    for heading in ("routing", "retrieval", "answers"):
        assert heading in done.stdout
