"""schemathesis against the running service's own OpenAPI schema, over every operation: no 5xx,
and every response as the schema declares it (status, content type, headers, body).

The real service runs on the scripted backend, with the knowledge graph on a real Neo4j, so that
every endpoint answers for real. Before fuzzing, a thread, a run, a document and a graph entity
are made, and schemathesis draws ids and workflow names from them part of the time (its
"dictionaries"): random ids alone would only ever reach the 404s. The run is bounded: at most
`MAX_EXAMPLES` test cases per operation and phase, `REQUEST_TIMEOUT_S` per request (streams
included), and `WALL_CLOCK_S` for the whole run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.backends import Reply, ScriptedBackend
from tests.conftest import backend_entry, make_settings
from tests.service_runner import running_service

# Authentication, in one place: how the service is started, and what every request carries.
# The bootstrap key is an admin of the tenant `default`, so the admin paths are fuzzed too. The
# limits are counted (their scripts run on every request) but set high enough not to cut the
# fuzzing short.
BOOTSTRAP = "conformance-bootstrap-key-0123456789"
AUTH: dict[str, Any] = {"mode": "keys", "bootstrap_key": BOOTSTRAP}
RATE_LIMITS = {"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000}
HEADERS = {"Authorization": f"Bearer {BOOTSTRAP}"}

# Every check about server errors and conformance to the schema (none that needs a second
# identity or a stateful guess about what the API should have accepted).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = 10
REQUEST_TIMEOUT_S = 10
WALL_CLOCK_S = 420
SEED = 8  # fixed: a failure here is reproduced with the same command

WORKFLOWS = ("switchboard", "research-crew")
TEXT = (
    "The with statement wraps the execution of a block with methods defined by a context "
    "manager. The with statement evaluates the expression to obtain a context manager."
)
GRAPH = {
    "entities": [
        {"name": "with statement", "type": "concept"},
        {"name": "context manager", "type": "concept"},
    ],
    "relations": [{"source": "with statement", "type": "USES", "target": "context manager"}],
}


def test_openapi_conformance(
    backend: ScriptedBackend, neo4j_url: str, tmp_path: Path, summary: list[str]
) -> None:
    backend.set_default(Reply(text=json.dumps(GRAPH)), model="extractor")
    settings = make_settings(
        backend_entry("primary", backend),
        graph={"url": neo4j_url},
        auth=AUTH,
        rate_limits=RATE_LIMITS,
    )
    with running_service(settings) as url:
        config = _config(tmp_path, _seed(url))
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{url}/openapi.json",
            *(arg for name, value in HEADERS.items() for arg in ("--header", f"{name}: {value}")),
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--request-timeout",
            str(REQUEST_TIMEOUT_S),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--report",
            "json,ndjson",
            "--report-dir",
            str(tmp_path),
            "--no-color",
        ]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=WALL_CLOCK_S
        )
        elapsed = time.monotonic() - started
    report = json.loads(next(tmp_path.glob("json-*.json")).read_text())
    requests = _requests(next(tmp_path.glob("ndjson-*.ndjson")))
    operations = report["operations"]
    summary.append(
        f"schemathesis {report['schemathesis_version']}: {requests} requests "
        f"({report['test_cases']['generated']} test cases) over {operations['tested']} "
        f"operations in {elapsed:.0f} s, seed {SEED}"
    )
    output = done.stdout[-30000:] + done.stderr[-5000:]
    assert operations["tested"] == operations["total"] > 0, output
    assert not report["failures"] and not report["errors"], output
    assert done.returncode == 0, output


def _seed(url: str) -> dict[str, list[str]]:
    """A thread with a finished run, a document and its graph's entities: ids that exist."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
        thread = "conformance-thread"
        client.post("/threads", json={"thread_id": thread}).raise_for_status()
        turn = {"messages": [{"role": "user", "content": "What does a with statement do?"}]}
        client.post(
            f"/threads/{thread}/runs/wait", json={"assistant_id": WORKFLOWS[0], "input": turn}
        ).raise_for_status()
        runs = client.get(f"/threads/{thread}/runs").raise_for_status().json()
        document = client.post("/documents", json={"text": TEXT, "title": "with"})
        entities = client.get("/graph/entities", params={"q": "context manager"})
    return {
        "workflows": list(WORKFLOWS),
        "threads": [thread],
        "runs": [run["run_id"] for run in runs],
        "documents": [document.raise_for_status().json()["id"]],
        "entities": [e["id"] for e in entities.raise_for_status().json()["entities"]],
    }


# Where each kind of id goes; each is drawn from its dictionary this often, else generated.
_BINDINGS = {
    "path.assistant_id": "workflows",
    "body.assistant_id": "workflows",
    "body.model": "workflows",
    "body.workflow": "workflows",
    "path.thread_id": "threads",
    "path.run_id": "runs",
    "path.document_id": "documents",
    "path.entity_id": "entities",
}
_PROBABILITY = 0.7


def _config(folder: Path, known: dict[str, list[str]]) -> Path:
    lines = []
    for name, values in known.items():
        assert values, f"seeding made no {name}"
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [
        f'"{key}" = {{ dictionary = "{name}", probability = {_PROBABILITY} }}'
        for key, name in _BINDINGS.items()
    ]
    path = folder / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _requests(ndjson: Path) -> int:
    """The requests made: every interaction recorded in the run's finished scenarios."""
    count = 0
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished:
            interactions = finished.get("recorder", {}).get("interactions", {})
            count += len(interactions)
    return count
