#!/usr/bin/env bash
# Start the peer: `langgraph dev` (in-memory runtime) serving bench/peer/graph.py as `router`.
#   PEER_BACKEND_URL  the OpenAI-compatible backend (required), e.g. http://127.0.0.1:18765/v1
#   PEER_PORT         port (default 2024)
#   PEER_DATA_DIR     working folder: langgraph dev writes `.langgraph_api/` (pickled runs,
#                     threads, checkpoints, flushed every 10 s) under its cwd; default: a new
#                     temporary folder, never the repository.
#   LOG_LEVEL         langgraph-api's log level (default here WARNING; its own default INFO
#                     logs several lines per run)
# Extra arguments go to `langgraph dev`, e.g. --n-jobs-per-worker 32: without it, runs execute
# one at a time (langgraph dev's default is 1 job, whatever its --help says).
# Offline: no LangSmith tracing or keys, no CLI analytics, no PyPI version check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${PEER_BACKEND_URL:?set PEER_BACKEND_URL to the OpenAI-compatible backend}"
DATA="${PEER_DATA_DIR:-$(mktemp -d -t langgraph-peer-XXXXXX)}"
mkdir -p "$DATA"
cd "$DATA"
unset LANGSMITH_API_KEY LANGCHAIN_API_KEY LANGGRAPH_CLOUD_LICENSE_KEY LANGSMITH_CONTROL_PLANE_API_KEY
export PEER_BACKEND_URL LANGSMITH_TRACING=false LANGCHAIN_TRACING_V2=false \
    LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=true LOG_LEVEL="${LOG_LEVEL:-WARNING}"
exec "$ROOT/.venv-peer/bin/langgraph" dev --no-browser --no-reload \
    --port "${PEER_PORT:-2024}" --config "$ROOT/bench/peer/langgraph.json" "$@"
