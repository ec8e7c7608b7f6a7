#!/usr/bin/env bash
# Installs the Kubernetes manifest tooling that tests/k8s/ and .ci/run need: kustomize v5 (the
# real one, built from its Go module through the Go module proxy; no kubectl or release binaries
# are reachable here) into .tools/, once. kubernetes-validate and hadolint come from the `dev`
# extra (PyPI). Idempotent: a kustomize that already reports the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
KUSTOMIZE_VERSION=v5.8.1
TOOLS="$PWD/.tools"
if [ -x "$TOOLS/kustomize" ] && "$TOOLS/kustomize" version 2>/dev/null | grep -qx "$KUSTOMIZE_VERSION"; then
  exit 0
fi
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
if [ ! -x "$GO" ]; then
  echo "k8s_tools.sh: Go is needed to build kustomize ($KUSTOMIZE_VERSION); set GO=/path/to/go" >&2
  exit 1
fi
mkdir -p "$TOOLS"
# -ldflags stamps the version that `kustomize version` prints (a plain `go install` says "(devel)").
GOBIN="$TOOLS" GOFLAGS=-buildvcs=false "$GO" install \
  -ldflags "-X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION" \
  "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
