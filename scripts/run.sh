#!/usr/bin/env bash
# Sets everything up, then serves Switchboard on the embedded default: with no backend
# configured it starts llama.cpp's server with SmolLM2-135M-Instruct on a loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/switchboard serve "$@"
