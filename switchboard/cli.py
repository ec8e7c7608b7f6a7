"""The `switchboard` command: `serve` runs the service, `worker` executes queued runs, `chat`
streams a turn to the terminal, `ingest` uploads documents, `keys` manages API keys, `eval` runs
the evaluation suites (evals/)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import sys
from pathlib import Path

import httpx

from switchboard import logs
from switchboard.settings import Settings, SettingsError, load_settings

# A string, not an import: the CLI sits below the API in the layering.
_APP_FACTORY = "api.app:app_from_environment"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and the bundled model if needed)")
    serve.add_argument("--host", help="override SWITCHBOARD_SERVER__HOST")
    serve.add_argument("--port", type=int, help="override SWITCHBOARD_SERVER__PORT")

    commands.add_parser("worker", help="execute queued runs (the API can then run without one)")

    chat = commands.add_parser("chat", help="send one message and stream the answer")
    chat.add_argument("message")
    chat.add_argument("--url", default=None, help="service URL (default: from the settings)")
    chat.add_argument("--workflow", default="switchboard")
    chat.add_argument("--events", action="store_true", help="print every event, not just text")

    ingest = commands.add_parser("ingest", help="upload files or folders to the document store")
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("--url", default=None, help="service URL (default: from the settings)")
    ingest.add_argument("--tenant", default="default", help="with auth mode off only")

    keys = commands.add_parser("keys", help="create, list and revoke API keys (in Redis)")
    keys_cli = importlib.import_module("memory.keys_cli")
    keys_cli.add_arguments(keys)

    evaluate = commands.add_parser("eval", help="run the evaluation suites (evals/README.md)")
    evaluate.add_argument(
        "--suite", choices=["routing", "retrieval", "answers", "all"], default="all"
    )
    evaluate.add_argument(
        "--backend", default="scripted", help="scripted, local, configured or a backend base URL"
    )
    evaluate.add_argument("--model", default=None, help="the model to ask, with a URL backend")
    evaluate.add_argument("--limit", type=int, default=None, help="at most N items per suite")
    evaluate.add_argument("--max-tokens", type=int, default=128, help="per generated answer")
    evaluate.add_argument("--out", type=Path, default=None, help="folder for <suite>.json")
    evaluate.add_argument("--gate", action="store_true", help="fail below evals/baseline.json")

    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(
            args.host or settings.server.host,
            args.port or settings.server.port,
            settings.server.log_level,
            settings.server.shutdown_grace_s,
        )
    if args.command == "worker":
        return _worker(settings)
    if args.command == "keys":
        return int(asyncio.run(keys_cli.run(settings, args)))
    if args.command == "eval":
        # Imported by name: evals sits above everything in the layering.
        runner = importlib.import_module("evals.runner")
        return int(runner.main(args, settings))
    url = args.url or f"http://{settings.server.host}:{settings.server.port}"
    headers = _auth_headers(settings)
    if args.command == "ingest":
        return _ingest(url, args.paths, {**headers, "X-Switchboard-Tenant": args.tenant})
    return _chat(url, args.message, args.workflow, args.events, headers)


def _auth_headers(settings: Settings) -> dict[str, str]:
    key = settings.auth.cli_key or settings.auth.bootstrap_key
    return {"Authorization": f"Bearer {key.get_secret_value()}"} if key is not None else {}


def _serve(host: str, port: int, log_level: str, grace_s: float) -> int:
    import uvicorn

    # The app's factory configures logging (`switchboard.logs`), uvicorn's loggers included.
    # On SIGTERM uvicorn stops accepting and waits up to `grace_s` for open connections (SSE
    # streams) before the app shuts down.
    uvicorn.run(
        _APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=int(grace_s),
    )
    return 0


def _worker(settings: Settings) -> int:
    logs.configure(settings.server.log_level, settings.server.log_format)
    # Imported by name, as the app is: the CLI sits below the API in the layering.
    workers = importlib.import_module("api.workers")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(workers.run_worker_process(settings))
    return 0


def _chat(url: str, message: str, workflow: str, show_events: bool, headers: dict[str, str]) -> int:
    body = {"workflow": workflow, "messages": [{"role": "user", "content": message}]}
    try:
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/stream",
            json=body,
            headers=headers,
            timeout=httpx.Timeout(10, read=300),
        ) as response:
            if response.status_code != 200:
                response.read()
                print(f"switchboard: HTTP {response.status_code}: {response.text}", file=sys.stderr)
                return 1
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if show_events:
                        print(f"[{kind}] {line[6:]}")
                    elif kind == "token":
                        print(data["text"], end="", flush=True)
                    elif kind == "error":
                        print(f"\nswitchboard: error: {data['message']}", file=sys.stderr)
                        return 1
            if not show_events:
                print()
    except httpx.ConnectError:
        print(
            f"switchboard: no service at {url}; start one with `switchboard serve`", file=sys.stderr
        )
        return 1
    return 0


_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in _SUFFIXES)
        else:
            found.append(path)
    return found


def _ingest(url: str, paths: list[Path], headers: dict[str, str]) -> int:
    """Upload each file, one request per file, with a progress bar on stderr."""
    files = _files(paths)
    if not files:
        print("switchboard: no files to ingest", file=sys.stderr)
        return 1
    failures = 0
    chunks = 0
    with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(10, read=600)) as client:
        for done, path in enumerate(files, start=1):
            try:
                with path.open("rb") as handle:
                    response = client.post("/documents", files={"files": (path.name, handle)})
            except httpx.ConnectError:
                print(f"\nswitchboard: no service at {url}", file=sys.stderr)
                return 1
            except OSError as exc:
                outcome, failures = f"unreadable: {exc.strerror}", failures + 1
            else:
                body = response.json()
                result = (body.get("documents") or [{}])[0]
                if result.get("status") in ("ready", "processing"):
                    document = result["document"]
                    chunks += document["chunk_count"]
                    outcome = f"{result['status']} ({document['chunk_count']} chunks)"
                else:
                    failures += 1
                    outcome = "failed: " + (result.get("error") or body.get("error", {}))["message"]
            bar = "#" * (30 * done // len(files))
            sys.stderr.write(
                f"\r[{bar:<30}] {done}/{len(files)} {path.name[:40]:<40} {outcome[:60]:<60}"
            )
            if outcome.startswith(("failed", "unreadable")):
                sys.stderr.write("\n")
            sys.stderr.flush()
    sys.stderr.write("\n")
    print(f"{len(files) - failures} of {len(files)} files ingested, {chunks} chunks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
