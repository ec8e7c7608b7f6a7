#!/usr/bin/env bash
# Sets everything up, then runs lint, type checks and every test tier (the end-to-end tier
# against the real SmolLM2 model included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
