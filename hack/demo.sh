#!/usr/bin/env bash
# The lifecycle on the embedded local control plane, on real MovieLens data: the operator runs with the
# local executor, the first 80% of the ratings land as files and are ingested into Iceberg, the FeatureSet
# materializes user features into Redis, the TrainingJob trains the two-tower recommender and the
# InferenceService serves the version that passed its gate (@champion) through MLServer and Loom's router;
# then the later ratings land, become a new snapshot that is materialized and trains a new version, which is
# rolled out by a canary analysed against Prometheus and promoted (@champion moves to it); last, a broken
# version registered under @challenger is rolled back while the champion keeps serving.
#
# It never asks anything (stdin is not read), checks what each step claims (every landed row is in the
# lake, the FeatureSet materialized the table's current snapshot, Redis serves each sampled user the
# values of the newest batch, the versions answering and the aliases in MLflow) and exits non-zero at the
# first check that fails. Afterwards the control plane, Redis, Prometheus, the operator and its model
# servers keep running; hack/demo-down.sh (`make demo-down`) stops them.
#
# Re-running is safe: the control plane and Redis of this DEV_DIR are reused, the operator is restarted
# (so it runs the current code), applying samples/ again changes nothing, and once the later ratings
# have landed a re-run finds no batch left and shows the loop at rest.
#
# Everything lives under DEV_DIR (DEV_DIR, else LOOM_DEV_DIR, else ~/.local/state/loom/dev), beside the
# control plane's own state (see hack/demo-down.sh for the layout). samples/datalake.yaml keeps its
# catalog and incoming files under /var/tmp/loom/movielens, so `kubectl apply -f samples/` by hand works
# as it is; the demo applies the same manifests with that prefix replaced by DEV_DIR/movielens.
# Ports (loopback only): REDIS_PORT (16379), METRICS_PORT (18080), HEALTH_PORT (18081), PROMETHEUS_PORT
# (19090), MLFLOW_PORT (15000, the MLflow UI); the model servers and routers get free ports from the operator.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/demo-down.sh
source "$repo/hack/demo-down.sh"   # DEV_DIR, PY, DATA, STATE, REDIS_DIR, TMP, LOGS, stop_operator
INCOMING="$DATA/incoming"
SAMPLE_DATA=/var/tmp/loom/movielens   # what samples/datalake.yaml names, replaced by $DATA
CANARY_PACE='interval: 1m'            # samples/inferenceservice.yaml's canary interval, replaced by DEMO_PACE
DEMO_PACE='interval: 10s'
# The rest of the ratings (20%, newer movies among them) land as one later batch: a version retrained on
# that beats the champion on the newest holdout (recall@10 0.092 vs 0.084), where a 5% batch does not.
LATER_BATCHES=1
REDIS_PORT="${REDIS_PORT:-16379}"
METRICS_PORT="${METRICS_PORT:-18080}"
HEALTH_PORT="${HEALTH_PORT:-18081}"
HEALTH_URL="http://127.0.0.1:$HEALTH_PORT/healthz"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}"
PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
MLFLOW_PORT="${MLFLOW_PORT:-15000}"
MLFLOW_URL="http://127.0.0.1:$MLFLOW_PORT"
NAMESPACE=default   # the dev kubeconfig's namespace, where samples/ land
log="$LOGS/operator.log"
mkdir -p "$TMP" "$LOGS"
export TMPDIR="$TMP"   # Feast and pyiceberg scratch files of the operator, its workloads and the checks

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool not found; \`make system-deps\` installs it"
  done
}

control_plane() {
  local cluster_env
  "$PY" -m loom.cli dev up --state-dir "$DEV_DIR" >/dev/null   # reuses a healthy one
  cluster_env=$("$PY" -m loom.cli dev env --state-dir "$DEV_DIR")
  eval "$cluster_env"   # KUBECONFIG, and the control plane's kubectl first on PATH
  PATH="$PATH:$(dirname "$PY")"   # where kubectl finds its plugin kubectl-loom
  need kubectl
  kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
  kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
}

start_redis() {
  local pid
  pid=$(redis_pids)
  if [[ -n $pid ]]; then
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "the redis of $DEV_DIR (pid $pid) is not on port $REDIS_PORT; \`make demo-down\` stops it"
    echo "redis running (pid $pid, port $REDIS_PORT)"
    return
  fi
  ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "port $REDIS_PORT already serves another Redis; set REDIS_PORT"
  mkdir -p "$REDIS_DIR"
  # Snapshots to its dir (and on SIGTERM), so the online features survive demo-down as the lake does.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save "60 1" --appendonly no \
    --daemonize yes --logfile "$LOGS/redis.log" </dev/null
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && { echo "redis running (port $REDIS_PORT, data in $REDIS_DIR)"; return; }
    sleep 0.1
  done
  tail -5 "$LOGS/redis.log" >&2
  die "redis did not start; see $LOGS/redis.log"
}

# Prometheus scraping the routers the operator announces (file_sd targets in $PROM_DIR/targets), every
# second, so the canary analysis sees a step's traffic within its 10 s interval.
start_prometheus() {
  ! reused "$(prometheus_pids | head -1)" "$PROMETHEUS_URL" /-/ready prometheus PROMETHEUS_PORT || return 0
  mkdir -p "$PROM_DIR/targets"
  "$PY" -c 'import sys; from pathlib import Path; from loom.devcluster.prometheus import write_config; write_config(Path(sys.argv[1]), "1s")' "$PROM_DIR"
  # In its dir (how demo-down finds it); exec, so no shell lingers holding the demo's output open.
  (cd "$PROM_DIR" && exec setsid prometheus --config.file=prometheus.yml --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --storage.tsdb.path=data --storage.tsdb.retention.time=2d) </dev/null >>"$LOGS/prometheus.log" 2>&1 &
  answers "$PROMETHEUS_URL/-/ready" prometheus "$LOGS/prometheus.log"
  echo "prometheus running ($PROMETHEUS_URL, data in $PROM_DIR)"
}

# reused PID URL HEALTH WHAT PORT_VARIABLE: true when WHAT of this DEV_DIR already runs (PID) and
# URL/HEALTH answers; false when none runs and URL is free to take; fails when URL answers for another.
reused() {
  if [[ -n $1 ]]; then
    curl -sf "$2$3" >/dev/null || die "the $4 of $DEV_DIR (pid $1) does not answer $2; \`make demo-down\` stops it"
    echo "$4 running (pid $1, $2)"
    return 0
  fi
  ! curl -sf "$2$3" >/dev/null 2>&1 || die "$2 already serves something else; set $5"
  return 1
}

# answers URL WHAT LOG: wait up to a minute for URL to answer; else the end of LOG, and fail.
answers() {
  for _ in $(seq 1 120); do
    curl -sf "$1" >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -5 "$3" >&2
  die "$2 did not start; see $3"
}

# The MLflow UI over the store the operator and its runs write (OperatorConfig's default under $STATE),
# without MLflow's job runner (seven worker processes the demo has no use for).
start_mlflow_ui() {
  ! reused "$(mlflow_pids | head -1)" "$MLFLOW_URL" /health "MLflow UI" MLFLOW_PORT || return 0
  mkdir -p "$STATE/mlflow"
  LOOM_DEMO_MLFLOW_UI="$DEV_DIR" MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$(dirname "$PY")/mlflow" server \
    --backend-store-uri "sqlite:///$STATE/mlflow/mlflow.db" --default-artifact-root "file://$STATE/mlflow/artifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 </dev/null >>"$LOGS/mlflow.log" 2>&1 &
  answers "$MLFLOW_URL/health" "the MLflow UI" "$LOGS/mlflow.log"
  echo "MLflow UI running ($MLFLOW_URL)"
}

start_operator() {
  local pid
  stop_operator
  ! curl -sf "$HEALTH_URL" >/dev/null 2>&1 || die "something else answers $HEALTH_URL; set HEALTH_PORT"
  mkdir -p "$STATE"
  printf '\n=== %s operator start\n' "$(date -Is)" >>"$log"
  # Configured through OperatorConfig's LOOM_* variables. Its own session: a Ctrl-C of the demo leaves
  # it running, demo-down stops it.
  LOOM_STATE_DIR="$STATE" LOOM_FEAST_REDIS="127.0.0.1:$REDIS_PORT" LOOM_METRICS_ADDRESS=127.0.0.1 \
    LOOM_PROMETHEUS_URL="$PROMETHEUS_URL" LOOM_PROMETHEUS_TARGETS_DIR="$PROM_DIR/targets" LOOM_REGISTRY_POLL_SECONDS=5 \
    setsid "$PY" -m loom.cli run --executor local --metrics-port "$METRICS_PORT" --liveness "$HEALTH_URL" \
    </dev/null >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do
    curl -sf "$HEALTH_URL" >/dev/null && {
      echo "operator running (pid $pid, log: $log, metrics: http://127.0.0.1:$METRICS_PORT/metrics)"; return; }
    alive "$pid" || { tail -20 "$log" >&2; die "the operator exited; see $log"; }
    sleep 0.5
  done
  die "the operator did not answer $HEALTH_URL within 2 minutes; see $log"
}

# samples/ as the demo applies them: the DataLake's catalog and incoming files under $DATA, and the
# InferenceService's canary at the demo's pace (a step every 10 s instead of every minute, 25% a step).
render_samples() {
  local sample text
  grep -qF "$SAMPLE_DATA" samples/datalake.yaml || die "samples/datalake.yaml no longer names $SAMPLE_DATA; update SAMPLE_DATA in $0"
  grep -qF "$CANARY_PACE" samples/inferenceservice.yaml || die "samples/inferenceservice.yaml no longer says '$CANARY_PACE'; update CANARY_PACE in $0"
  for sample in samples/*.yaml; do
    text=$(<"$sample")
    text=${text//"$SAMPLE_DATA"/"$DATA"}
    printf -- '---\n%s\n' "${text//"$CANARY_PACE"/"$DEMO_PACE"}"
  done
}

snapshot() { kubectl get datalake movielens -o jsonpath="{.status.tables[?(@.name==\"$1\")].currentSnapshotId}"; }
materialized() { kubectl get featureset user-features -o jsonpath='{.status.lastMaterialized.snapshotId}'; }
features_snapshot() { kubectl get featureset user-features -o jsonpath='{.status.sourceSnapshotId}'; }
# table=rows of every table, as the DataLake reports them and as landed in the incoming files
rows() { kubectl get datalake movielens -o jsonpath='{range .status.tables[*]}{.name}={.rowCount}{"\n"}{end}' | sort | xargs; }
landed() {
  INCOMING="$INCOMING" "$PY" - <<'PY'
import os
from pathlib import Path

import pyarrow.parquet as pq

incoming = Path(os.environ["INCOMING"])
files = {"movies": ["movies.parquet"], "ratings": ["ratings/*.parquet"], "user_features": ["user_features/*.parquet"]}
print(*sorted(f"{table}={sum(pq.ParquetFile(p).metadata.num_rows for g in globs for p in incoming.glob(g))}"
              for table, globs in files.items()))
PY
}
lake_holds() { [[ $(rows) == "$1" ]]; }
features_follow() {  # the last materialization is of the table's current snapshot
  local current
  current=$(snapshot user_features)
  [[ -n $current && $(materialized) == "$current" ]]
}

# Where every Loom resource stands: phase, Ready and why, progress, canary weight (the kubectl plugin).
resources() { echo; kubectl loom status | sed 's/^/  /'; }

# until_ok SECONDS WHAT COMMAND...: COMMAND every 2 s until it succeeds; fails the demo at the deadline.
until_ok() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what; see $log"
    sleep 2
  done
}

# What a model server reads from Redis for the first users of the newest ratings batch, checked against
# the newest user_features batch (every user's aggregates as of that batch).
check_online() {
  INCOMING="$INCOMING" NAMESPACE="$NAMESPACE" LOOM_STATE_DIR="$STATE" LOOM_FEAST_REDIS="127.0.0.1:$REDIS_PORT" "$PY" - <<'PY'
import math
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

from loom.config import OperatorConfig
from loom.domain.feature_views import feast_name, feast_project
from loom.drivers.feast_online import OnlineFeatureReader
from loom.drivers.feast_store import OnlineKind, StoreSettings

incoming = Path(os.environ["INCOMING"])
newest_ratings = sorted((incoming / "ratings").glob("ratings-*.parquet"))[-1]
newest_features = sorted((incoming / "user_features").glob("user-features-*.parquet"))[-1]
users = sorted(set(pq.read_table(newest_ratings, columns=["userId"]).column("userId").to_pylist()))[:3]
expected = {row["userId"]: row for row in pq.read_table(newest_features).to_pylist()}

config = OperatorConfig()  # the registry and Redis the operator's defaults name (LOOM_STATE_DIR, LOOM_FEAST_REDIS)
settings = StoreSettings(feast_project(os.environ["NAMESPACE"]), config.feast_registry_uri, OnlineKind.REDIS,
                         config.feast_redis)
values = OnlineFeatureReader(settings, feast_name("user-features")).read([{"userId": u} for u in users])
wrong = []
for i, user in enumerate(values["userId"]):
    served = {name: column[i] for name, column in values.items() if name != "userId"}
    print(f"  user {user}: " + ", ".join(f"{name}={value}" for name, value in served.items()))
    for name, value in served.items():
        want = expected[user][name]
        if not (value == want or isinstance(value, float) and isinstance(want, float) and math.isclose(value, want)):
            wrong.append(f"user {user} {name}: Redis serves {value!r}, {newest_features.name} says {want!r}")
if wrong:
    sys.exit("demo: wrong online values:\n  " + "\n  ".join(wrong))
PY
}

# follow_training SNAPSHOT SECONDS: a progress bar of the TrainingJob's newest run until its run for the
# FeatureSet snapshot SNAPSHOT succeeded with a registered version; then its metrics, the gate's verdict
# and the lineage, checked against MLflow (the version the alias points at: the new one when it passed,
# the one before when it did not beat the champion). Fails on a failed run or any other failed gate.
follow_training() {
  SNAPSHOT="$1" SECONDS_LEFT="$2" LOOM_STATE_DIR="$STATE" "$PY" - <<'PY'
import json
import os
import subprocess
import sys
import time

from loom.config import OperatorConfig

want, deadline = int(os.environ["SNAPSHOT"]), time.monotonic() + int(os.environ["SECONDS_LEFT"])
last = None
while True:
    tj = json.loads(subprocess.run(["kubectl", "get", "trainingjob", "movielens-two-tower", "-o", "json"],
                                   check=True, capture_output=True, text=True).stdout)
    status = tj.get("status") or {}
    runs, progress = status.get("runs") or [], status.get("progress") or {}
    newest = runs[0] if runs else {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    ours = newest.get("snapshotId") == want
    if ours and newest.get("phase") == "Succeeded" and newest.get("modelVersion"):
        break
    if ours and newest.get("phase") == "Failed":
        sys.exit(f"demo: run {newest['name']} failed: {conditions.get('Trained', {}).get('message')}")
    if progress.get("epoch") is not None:
        done = progress.get("percent") or 0
        bar = "#" * (done // 5) + "." * (20 - done // 5)
        metrics = " ".join(f"{k} {v:.4f}" for k, v in (progress.get("metrics") or {}).items())
        left = progress.get("estimatedRemainingSeconds")
        line = (f"  {newest.get('name')}: epoch {progress['epoch']}/{progress.get('totalEpochs')} [{bar}] {done:3d}%"
                f"  loss {progress.get('loss', 0):.3f}  {metrics}" + (f"  ~{left}s left" if left is not None else ""))
    else:
        line = f"  {newest.get('name', '(no run yet)')}: {newest.get('phase', 'Pending')} - " \
               f"{conditions.get('Trained', {}).get('message', 'waiting')}"
    key = (newest.get("name"), newest.get("phase"), progress.get("epoch"))  # a line per epoch, not per estimate
    if key != last:
        print(line, flush=True)
        last = key
    if time.monotonic() > deadline:
        sys.exit(f"demo: timed out waiting for the run of snapshot {want}; status: {json.dumps(status)[:2000]}")
    time.sleep(2)

metrics = status.get("metrics") or {}
print(f"  run {newest['name']} ({newest.get('reason')}) registered version {status['modelVersion']}")
print("  holdout (newest 20% of each user's positives)   recall@10   ndcg@10")
for label, prefix in (("two-tower (Loom)", ""), ("popularity", "popularity_"), ("EASE (lambda=500)", "ease_"),
                      ("champion", "champion_")):
    if f"{prefix}recall@10" in metrics:
        print(f"    {label:<44} {metrics[f'{prefix}recall@10']:.4f}     {metrics.get(f'{prefix}ndcg@10', 0):.4f}")
gate = status.get("gate") or {}
print(f"  gate: {'passed' if gate.get('passed') else 'FAILED'}: {gate.get('reason')}")
lineage = status.get("lineage") or {}
print("  lineage: " + ", ".join(f"{s['table']}@{s['snapshotId']}" for s in lineage.get("snapshots", []))
      + f"; MLflow run {lineage.get('runId')}, logged model {lineage.get('loggedModelId')}, {lineage.get('modelUri')}")
refused = not gate.get("passed")
if refused and "does not beat the champion" not in (gate.get("reason") or ""):
    sys.exit("demo: the new version did not pass the evaluation gate")
if not (lineage.get("runId") and lineage.get("loggedModelId") and len(lineage.get("snapshots", [])) == 3):
    sys.exit(f"demo: the lineage is incomplete: {lineage}")

from mlflow.tracking import MlflowClient  # noqa: E402 (the check only, not the operator)

uri = OperatorConfig().tracking_uri
alias = tj["spec"]["model"].get("alias", "challenger")
held = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(tj["spec"]["model"]["name"], alias)
# A later version may hold it since (a re-run finds the demo's broken version there), never an earlier one.
if not refused and int(held.version) < int(status["modelVersion"]):
    sys.exit(f"demo: @{alias} is version {held.version} in MLflow, the TrainingJob registered {status['modelVersion']}")
moved_on = not refused and str(held.version) != status["modelVersion"]
print(f"  MLflow: models:/{tj['spec']['model']['name']}@{alias} is version {held.version} ({uri})"
      + (", where the gate kept it" if refused else "") + (", moved on since" if moved_on else ""))
PY
}

up() {
  local landed_rows batch bad
  need redis-server redis-cli curl prometheus
  trap 'rc=$?; ((rc == 0)) || echo "demo: failed; the operator log is $log, \`make demo-down\` stops what runs" >&2' EXIT

  step "The local control plane, with Loom's CRDs"
  control_plane

  step "MovieLens arrives: the initial load (first 80% of ratings by time)"
  "$PY" components/movielens --out "$INCOMING" --batches "$LATER_BATCHES" initial

  step "Redis (the online store), Prometheus (the canary analysis' metrics), the MLflow UI and the operator"
  start_redis
  start_prometheus
  start_mlflow_ui
  start_operator

  step "kubectl apply -f samples/ (the lake's catalog and incoming files under $DATA)"
  render_samples | kubectl apply -f -
  kubectl wait datalake/movielens --for=condition=Ready --timeout=300s >/dev/null
  # Scheduled ingests run at their next minute tick: wait for the data, not just for Ready.
  landed_rows=$(landed)
  until_ok 240 "the lake to hold every landed row ($landed_rows)" lake_holds "$landed_rows"
  echo "tables: $(rows); ratings snapshot $(snapshot ratings)"

  step "The FeatureSet materializes user features from that snapshot into Redis"
  until_ok 240 "the FeatureSet to materialize user_features snapshot $(snapshot user_features)" features_follow
  echo "user_features snapshot $(materialized) materialized; online values of users who rated in the newest batch:"
  check_online

  step "The TrainingJob trains the two-tower recommender on that snapshot (local torchrun, tracked in MLflow)"
  follow_training "$(features_snapshot)" 900
  resources

  step "The InferenceService serves @champion: MLServer with Loom's recommender, behind Loom's router"
  LOOM_STATE_DIR="$STATE" "$PY" hack/demo_serving.py serve "$INCOMING"

  step "The later ratings land (the last 20% by time); the scheduled ingest commits them as a new snapshot"
  batch=$("$PY" components/movielens --out "$INCOMING" --batches "$LATER_BATCHES" next)
  echo "$batch"
  if [[ $batch == *'"batch": null'* ]]; then
    echo "every MovieLens batch has been replayed; \`make demo-down PURGE=1\` lets the story start over"
  else
    landed_rows=$(landed)
    until_ok 240 "the lake to hold every landed row ($landed_rows)" lake_holds "$landed_rows"
    echo "tables: $(rows); ratings snapshot $(snapshot ratings)"

    step "The FeatureSet follows the new user_features snapshot and re-materializes"
    until_ok 240 "the FeatureSet to materialize user_features snapshot $(snapshot user_features)" features_follow
    echo "user_features snapshot $(materialized) materialized; online values of users who rated in the new batch:"
    check_online

    step "New features: the TrainingJob retrains on the new snapshot, its first run kept in the history"
    follow_training "$(features_snapshot)" 900
    kubectl get trainingjob movielens-two-tower -o jsonpath='{range .status.runs[*]}  {.name}: {.phase}, snapshot {.snapshotId}, version {.modelVersion} ({.reason}){"\n"}{end}'

    if [[ $(kubectl get trainingjob movielens-two-tower -o jsonpath='{.status.gate.passed}') == true ]]; then
      step "The new version under @challenger is rolled out by canary: a step every 10 s while Prometheus says it is healthy"
      LOOM_STATE_DIR="$STATE" "$PY" hack/demo_serving.py rollout "$INCOMING" Succeeded "$(kubectl get trainingjob movielens-two-tower -o jsonpath='{.status.modelVersion}')" 300
    else
      step "The gate refused the new version (it does not beat the champion): no canary, @champion serves on"
      LOOM_STATE_DIR="$STATE" "$PY" hack/demo_serving.py serve "$INCOMING"
    fi

    resources
    step "A broken version under @challenger (its user id map shifted: 30% of its requests fail) is rolled back"
    bad=$(LOOM_STATE_DIR="$STATE" "$PY" hack/demo_serving.py bad-version)
    LOOM_STATE_DIR="$STATE" "$PY" hack/demo_serving.py rollout "$INCOMING" Failed "$bad" 300
    resources
  fi
  kubectl wait datalake/movielens featureset/user-features trainingjob/movielens-two-tower inferenceservice/movie-recommender \
    --for=condition=Ready --timeout=120s >/dev/null

  step "kubectl get loom"
  kubectl get loom
  echo
  kubectl get loom -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[*]}{.type}={.status} ({.reason}) {end}{"\n"}{end}'
  step "Recent events"
  kubectl get events --sort-by=.lastTimestamp | tail -8

  step "What is served: a recommendation, and its lineage down to the Iceberg snapshots"
  LOOM_STATE_DIR="$STATE" "$PY" hack/demo_serving.py curl "$INCOMING"
  echo "\$ kubectl loom lineage isvc/movie-recommender"
  kubectl loom lineage isvc/movie-recommender

  step "Still running"
  echo "The operator, its model servers, Redis, Prometheus, the MLflow UI and the control plane keep running:"
  echo "  MLflow UI:  $MLFLOW_URL  (the runs, models:/movielens-two-tower and its aliases)"
  echo "  Prometheus: $PROMETHEUS_URL  (the routers: loom_router_requests_total, loom_router_weight)"
  echo "  eval \"\$($PY -m loom.cli dev env --state-dir $DEV_DIR)\"; kubectl get loom; kubectl loom status"
  echo "To stop them (the data stays; PURGE=1 deletes it): make demo-down DEV_DIR=$DEV_DIR"
}

up
