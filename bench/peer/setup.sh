#!/usr/bin/env bash
# The peer's virtual environment (/work/main/.venv-peer): `langgraph-cli[inmem]` (the official
# `langgraph dev` server) and this project's dependencies, at the versions of the service's own
# venv for the packages the graph runs on. The project is put on the path by a .pth file (what an
# editable install does, without writing build metadata into the repository).
# Idempotent: does nothing when the stamp matches this script and pyproject.toml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MAIN_PY="$ROOT/.venv/bin/python"
PEER="$ROOT/.venv-peer"
STAMP="$PEER/.peer-stamp"

if [[ ! -x "$MAIN_PY" ]]; then
    echo "setup.sh: $MAIN_PY not found: create the service's venv first" >&2
    exit 1
fi
want="$(cat "${BASH_SOURCE[0]}" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$PEER/bin/langgraph" ]]; then
    echo "peer venv up to date: $PEER"
    exit 0
fi

started=$(date +%s)
# The service venv's base interpreter (a venv's python cannot make another venv reliably).
base="$("$MAIN_PY" -c 'import sys; print(sys.base_prefix)')"
version="$("$MAIN_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
python="$base/bin/python$version"
[[ -x "$PEER/bin/python" ]] || "$python" -m venv "$PEER"
# Python 3.11's venv writes no .gitignore, and the repository ignores only `.venv/`.
echo '*' > "$PEER/.gitignore"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The project's dependencies, read from pyproject.toml (no build, nothing written in the repo).
"$PEER/bin/python" - "$ROOT/pyproject.toml" > "$work/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
# Same versions as the service for what the graph runs on (all of the service's venv is too
# strict: its protobuf 7 would make pip fall back to a langgraph-cli without `inmem`).
"$MAIN_PY" -m pip freeze --exclude-editable 2>/dev/null \
    | grep -i -E '^(langgraph|langgraph-checkpoint|langgraph-prebuilt|langgraph-sdk|langchain-core|pydantic|pydantic[-_]core|pydantic[-_]settings|httpx|httpcore|anyio|orjson|ormsgpack|redis|redisvl|langgraph-checkpoint-redis|openai|crewai)==' \
    > "$work/constraints.txt" || true

"$PEER/bin/python" -m pip install -q --upgrade pip
"$PEER/bin/python" -m pip install -q "langgraph-cli[inmem]" -r "$work/requirements.txt" \
    -c "$work/constraints.txt"

# The repository on the path, like an editable install.
site="$("$PEER/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$ROOT" > "$site/switchboard-peer.pth"
"$PEER/bin/python" -c 'import graphs.router, langgraph_api, langgraph_runtime_inmem'

echo "$want" > "$STAMP"
"$PEER/bin/python" -m pip list 2>/dev/null | grep -i -E '^(langgraph[a-z-]*|langchain-core) '
echo "peer venv ready in $(( $(date +%s) - started )) s: $PEER"
