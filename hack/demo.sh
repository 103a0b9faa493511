#!/usr/bin/env bash
# The lifecycle on the embedded local control plane, on real MovieLens data: the operator runs with the
# local executor, the first 80% of the ratings land as files and are ingested into Iceberg, then a later
# batch lands and becomes a new snapshot; the rest of the chain shows what it is waiting for.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
PY="${PY:-.venv/bin/python}"
DEV_DIR="${DEV_DIR:-$HOME/.local/state/loom/dev}"
INCOMING=/var/tmp/loom/movielens/incoming   # where samples/datalake.yaml's ingests look
eval "$("$PY" -m loom.cli dev env --state-dir "$DEV_DIR")"
export LOOM_STATE_DIR="$DEV_DIR/operator"
# The FeatureSet sample names no online store connection: the operator's default Redis is this one.
REDIS_PORT=16379
export LOOM_FEAST_REDIS="127.0.0.1:$REDIS_PORT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
snapshot() { kubectl get datalake movielens -o jsonpath="{.status.tables[?(@.name==\"${1:-ratings}\")].currentSnapshotId}"; }
materialized() { kubectl get featureset user-features -o jsonpath='{.status.sourceSnapshotId}'; }
online() {  # online() USER...
  USERS="$*" "$PY" - <<'PY'
from loom.drivers.feast_online import OnlineFeatureReader
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.services.featureset import FeastDefaults
import os
settings = StoreSettings("loom_default", FeastDefaults.from_env().registry_uri, OnlineKind.REDIS, os.environ["LOOM_FEAST_REDIS"])
users = [int(u) for u in os.environ["USERS"].split()]
values = OnlineFeatureReader(settings, "user_features").read([{"userId": u} for u in users])
for i, user in enumerate(values["userId"]):
    print(f"  user {user}: " + ", ".join(f"{k}={v[i]}" for k, v in values.items() if k != "userId"))
PY
}
rows() { kubectl get datalake movielens -o jsonpath='{range .status.tables[*]}{.name}={.rowCount} {end}'; }

step "MovieLens arrives: the initial load (first 80% of ratings by time)"
"$PY" components/movielens --out "$INCOMING" initial

log="$DEV_DIR/logs/operator.log"
mkdir -p "$(dirname "$log")"
redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
  --appendonly no --daemonize yes --dir "$DEV_DIR" --pidfile "$DEV_DIR/redis.pid" --logfile "$DEV_DIR/logs/redis.log"
"$PY" -m loom.cli run --executor local --metrics-port 18080 --liveness http://127.0.0.1:18081/healthz >"$log" 2>&1 &
operator=$!
trap 'kill "$operator" 2>/dev/null; wait "$operator" 2>/dev/null || true' EXIT
until curl -sf http://127.0.0.1:18081/healthz >/dev/null; do
  kill -0 "$operator" 2>/dev/null || { echo "operator exited; see $log" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 0.5
done
echo "operator running (log: $log, metrics: http://127.0.0.1:18080/metrics)"

step "kubectl apply -f samples/"
kubectl apply -f samples/
kubectl wait datalake/movielens --for=condition=Ready --timeout=300s >/dev/null
# Scheduled ingests run at the next minute tick: wait for the data, not just for Ready.
wait_for() { for _ in $(seq 1 "$1"); do eval "$2" && return 0; sleep 1; done; echo "timed out: $2; see $log" >&2; exit 1; }
wait_for 180 '[[ -n "$(snapshot ratings)" && -n "$(snapshot user_features)" ]]'
echo "tables: $(rows)"
before=$(snapshot ratings)
features_before=$(snapshot user_features)
echo "ratings snapshot: $before"

step "The FeatureSet materializes user features from that snapshot into Redis"
wait_for 240 '[[ "$(materialized)" == "$features_before" ]]'
echo "user_features snapshot $(materialized) materialized; online values:"
online 1 2 3

step "A later batch lands; the scheduled ingest commits it as a new snapshot"
batch=$("$PY" components/movielens --out "$INCOMING" next)
echo "$batch"
wait_for 180 '[[ "$(snapshot ratings)" != "$before" && "$(snapshot user_features)" != "$features_before" ]]'
echo "tables: $(rows)"
echo "ratings snapshot: $(snapshot ratings)"

step "The FeatureSet follows the new user_features snapshot and re-materializes"
wait_for 240 '[[ "$(materialized)" == "$(snapshot user_features)" ]]'
newest=$(ls "$INCOMING"/ratings/ratings-*.parquet | tail -1)
active=$("$PY" -c "import pyarrow.parquet as pq, sys; print(*sorted(set(pq.read_table(sys.argv[1]).column('userId').to_pylist()))[:3])" "$newest")
echo "user_features snapshot $(materialized) materialized; online values of users who rated in the new batch:"
online $active

step "kubectl get loom"
kubectl get loom
echo
kubectl get loom -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[*]}{.type}={.status} ({.reason}) {end}{"\n"}{end}'
step "Recent events"
kubectl get events --sort-by=.lastTimestamp | tail -8
