#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager and kubectl from the Go module proxy into
# ${LOOM_CACHE_DIR:-~/.cache/loom}/controlplane (a no-op when that version is already cached).
# Versions come from hack/controlplane/go.mod and hack/etcd/go.mod. Prints the kubectl bin dir.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
export PYTHONPATH="$repo/operator${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m loom.devcluster build "$@"
