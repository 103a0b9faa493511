#!/usr/bin/env bash
# Stop what hack/demo.sh started in DEV_DIR: the operator, the workload processes it started (model
# servers and routers too), Redis, Prometheus, the MLflow UI and the control plane. The data stays for the
# next demo; PURGE=1 deletes it (and DEV_DIR once empty).
# Safe to run any number of times, and when nothing runs.
#
# The demo keeps no pid files of its own: its processes are found by what only they have, so a stale
# file or a reused pid never leads to signalling someone else's process.
#   operator   environment LOOM_STATE_DIR=DEV_DIR/operator, command line `-m loom.cli run`
#   workloads  environment LOOM_STATE_DIR=DEV_DIR/operator too: the operator's local executor passes its
#              environment on to every workload process, and they to theirs
#   Redis      redis-server working in DEV_DIR/redis (its --dir)
#   Prometheus prometheus working in DEV_DIR/prometheus
#   MLflow UI  environment LOOM_DEMO_MLFLOW_UI=DEV_DIR (the server and its workers)
# hack/demo.sh sources this file for the layout and the stop functions.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$repo/.venv/bin/python}"
[[ $PY != */* || $PY == /* ]] || PY="$repo/$PY"   # absolute, but not resolved: it is the venv's link
DEV_DIR="$(realpath -m "${DEV_DIR:-${LOOM_DEV_DIR:-$HOME/.local/state/loom/dev}}")"
DATA="$DEV_DIR/movielens"     # the Iceberg SQL catalog, its warehouse, the incoming files
STATE="$DEV_DIR/operator"     # LOOM_STATE_DIR: the local executor's runs and schedules, the Feast registry
REDIS_DIR="$DEV_DIR/redis"    # the online store's dump
TMP="$DEV_DIR/tmp"            # TMPDIR of everything the demo starts
PROM_DIR="$DEV_DIR/prometheus" # Prometheus' config, file_sd targets (the operator writes them) and data
LOGS="$DEV_DIR/logs"          # operator.log, redis.log, prometheus.log and mlflow.log, beside the control plane's

die() { echo "demo: $*" >&2; exit 1; }

# pids_with VAR=VALUE: live processes (not this shell) started with that environment variable. /proc has
# the environment a process started with, so a shell that exports the variable later does not match.
pids_with() {
  local pid
  for pid in $({ grep -lzxF "$1" /proc/[0-9]*/environ 2>/dev/null || true; } | cut -d/ -f3); do
    [[ $pid != "$$" && $pid != "$BASHPID" ]] && alive "$pid" && echo "$pid"
  done
  return 0
}
# The operator and every workload process it started.
state_pids() { pids_with "LOOM_STATE_DIR=$STATE"; }
alive() {  # not exited (a zombie has)
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != [ZX] ]]
}
operator_pids() {
  local pid cmdline
  for pid in $(state_pids); do
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    [[ $cmdline == *" -m loom.cli run "* ]] && echo "$pid"
  done
  return 0
}
# pids_in DIR COMM: live processes named COMM working in DIR.
pids_in() {
  local pid
  for pid in $(find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$1" 2>/dev/null | cut -d/ -f3); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && alive "$pid" && echo "$pid"
  done
  return 0
}
redis_pids() { pids_in "$REDIS_DIR" redis-server; }
prometheus_pids() { pids_in "$PROM_DIR" prometheus; }
mlflow_pids() { pids_with "LOOM_DEMO_MLFLOW_UI=$DEV_DIR"; }

# stop WHAT FINDER: SIGTERM to what FINDER lists, SIGKILL to what is left after 30 s; returns once
# FINDER lists nothing. Each pid is signalled only while FINDER still names it.
stop() {
  local what=$1 finder=$2 sig pids
  pids=$("$finder")
  [[ -n $pids ]] || return 0
  echo "stopping $what (pid ${pids//$'\n'/, })"
  for sig in TERM KILL; do
    # shellcheck disable=SC2086  # one pid a word
    kill -"$sig" $pids 2>/dev/null || true
    for _ in $(seq 1 300); do
      pids=$("$finder")
      [[ -n $pids ]] || return 0
      sleep 0.1
    done
    echo "$what (pid ${pids//$'\n'/, }) outlived SIG$sig" >&2
  done
  die "could not stop $what"
}

# The operator first, so it starts no run (and retries no attempt) while its workloads are stopped.
stop_operator() { stop operator operator_pids; }

# Workload runs outlive the operator by design (each in its own session); their supervisors record how
# they ended, so the next operator reports the stopped runs as failed.
stop_workloads() { stop "workload processes" state_pids; }

stop_redis() { stop redis redis_pids; }  # SIGTERM: it saves its dump first
stop_prometheus() { stop prometheus prometheus_pids; }
stop_mlflow() { stop "the MLflow UI" mlflow_pids; }

down() {
  if [[ ! -d $DEV_DIR ]]; then
    echo "nothing to stop: $DEV_DIR does not exist"
    return
  fi
  [[ -x $PY ]] || die "$PY not found: \`make venv\` creates it"
  stop_operator
  stop_workloads
  stop_redis
  stop_prometheus
  stop_mlflow
  if [[ ${PURGE:-} == 1 ]]; then
    echo "deleting the demo's data under $DEV_DIR"
    rm -rf "$DATA" "$STATE" "$REDIS_DIR" "$PROM_DIR" "$TMP" "$LOGS/operator.log" "$LOGS/redis.log" \
      "$LOGS/prometheus.log" "$LOGS/mlflow.log"
    "$PY" -m loom.cli dev down --state-dir "$DEV_DIR" --purge   # its own files, then DEV_DIR once empty
    echo "stopped; the demo's data is deleted"
  else
    "$PY" -m loom.cli dev down --state-dir "$DEV_DIR"
    echo "stopped; the data stays in $DEV_DIR (PURGE=1 deletes it)"
  fi
}

[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0
down
