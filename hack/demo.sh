#!/usr/bin/env bash
# The lifecycle on the embedded local control plane: the operator runs with the local executor,
# the MovieLens samples are applied with kubectl, and the resources' story is printed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
PY="${PY:-.venv/bin/python}"
DEV_DIR="${DEV_DIR:-$HOME/.local/state/loom/dev}"
eval "$("$PY" -m loom.cli dev env --state-dir "$DEV_DIR")"

log="$DEV_DIR/logs/operator.log"
mkdir -p "$(dirname "$log")"
"$PY" -m loom.cli run --executor local --metrics-port 18080 --liveness http://127.0.0.1:18081/healthz >"$log" 2>&1 &
operator=$!
trap 'kill "$operator" 2>/dev/null; wait "$operator" 2>/dev/null || true' EXIT
until curl -sf http://127.0.0.1:18081/healthz >/dev/null; do
  kill -0 "$operator" 2>/dev/null || { echo "operator exited; see $log" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 0.5
done
echo "operator running (log: $log, metrics: http://127.0.0.1:18080/metrics)"

kubectl apply -f samples/
for kind in datalake featureset trainingjob inferenceservice; do
  kubectl wait "$kind" --all --for=jsonpath='{.status.observedGeneration}' --timeout=60s >/dev/null
done
echo
kubectl get loom
echo
echo "Why each resource is (not yet) Ready:"
kubectl get loom -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[*]}{.type}={.status} ({.reason}) {end}{"\n"}{end}'
echo
kubectl get events --sort-by=.lastTimestamp | tail -8
