"""Benchmark: training through a TrainingJob (local executor: torchrun under the run's supervisor, the
operator following it) against the trainer entrypoint run directly, on the same data.

    .venv/bin/python bench/training_throughput.py [--repeat 1] [--epochs 8]

A control plane of its own, the real operator (`loom run --executor local`) and the samples applied
with their catalog and incoming files in a temp dir: the first 80% of MovieLens ingested once, the user
features materialized (SQLite online store), and the TrainingJob sample (retraining off) trained on
them. Then the same train.json the run was given (same snapshots, same hyperparameters) is trained by
`python components/train` directly, into another MLflow experiment. `--repeat n` runs both n times
(a new TrainingJob each time) and reports medians.

Throughput is steady-state epochs per minute (epochs 2..N, from the epoch timestamps the trainer logs
to MLflow; the first epoch carries warm-up in both; both train the same rows). The whole run's wall time is
beside it: the run's start to finish as the executor reports it, against the direct process's.

Floor: throughput ratio (ours / direct) >= 0.95; goal >= 0.99.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from _cluster import ROOT, ControlPlane, control_plane, operator

from loom.drivers import mlflow_tracking

SAMPLE_DATA = "/var/tmp/loom/movielens"
FLOOR, GOAL = 0.95, 0.99
TJ = "movielens-two-tower"


def samples(data: Path, epochs: int) -> list[dict[str, Any]]:
    """The samples, their files under `data`; ingests run once (no minute ticks), features go to SQLite,
    the TrainingJob does not retrain."""
    docs = [yaml.safe_load((ROOT / "samples" / f"{name}.yaml").read_text().replace(SAMPLE_DATA, str(data)))
            for name in ("datalake", "featureset", "trainingjob")]
    lake, features, training = docs
    for ingest in lake["spec"]["ingest"]:
        ingest.pop("schedule", None)
    lake["spec"].pop("maintenance", None)
    features["spec"]["online"] = {"enabled": True, "store": "sqlite"}
    features["spec"].pop("materialization", None)
    training["spec"]["retrain"] = {"onNewFeatures": False}
    training["spec"]["model"]["hyperparameters"]["epochs"] = str(epochs)
    return docs


def get(plane: ControlPlane, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(plane.run("get", kind, name, "-o", "json").stdout))


def wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def epochs_per_minute(uri: str, experiment: str, run_name: str) -> float:
    run = mlflow_tracking.find_run(uri, experiment, run_name)
    assert run is not None, f"no MLflow run {run_name} in {experiment}"
    ends = run.epochs_ended
    if len(ends) < 2:
        raise RuntimeError("fewer than two epochs were logged: nothing steady to measure")
    return 60 * (len(ends) - 1) / (ends[-1] - ends[0]).total_seconds()


def one(plane: ControlPlane, tmp: Path, state: Path, uri: str, index: int, epochs: int) -> dict[str, float]:
    name = f"{TJ}-{index}"
    training = samples(tmp / "data", epochs)[2]
    training["metadata"]["name"] = name
    plane.run("apply", "-f", "-", stdin=json.dumps(training))
    record = wait_for(f"the run of TrainingJob {name}", lambda: next(
        (r for r in (get(plane, "trainingjob", name).get("status") or {}).get("runs", [])
         if r["phase"] in ("Succeeded", "Failed")), None), 1800)
    if record["phase"] != "Succeeded":
        raise RuntimeError(f"TrainingJob {name} failed: {get(plane, 'trainingjob', name)['status']}")
    ours_wall = (datetime.fromisoformat(record["completionTime"]) - datetime.fromisoformat(record["startTime"])
                 ).total_seconds()
    ours = epochs_per_minute(uri, f"default/{name}", record["name"])

    config = json.loads((state / "runs" / "default" / record["name"] / "files" / "train.json").read_text())
    config["run"]["name"] = f"direct-{index}"
    config["tracking"]["experiment"] = f"bench/direct-{index}"
    direct_file = tmp / f"direct-{index}.json"
    direct_file.write_text(json.dumps(config))
    started = time.monotonic()
    subprocess.run([sys.executable, str(ROOT / "components" / "train"), "--config-file", str(direct_file)],
                   check=True, capture_output=True, cwd=tmp, timeout=1800)
    direct_wall = time.monotonic() - started
    direct = epochs_per_minute(uri, f"bench/direct-{index}", f"direct-{index}")
    return {"ours": ours, "direct": direct, "ours_wall": ours_wall, "direct_wall": direct_wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (medians are reported)")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loom-bench-train-") as tmp_dir:
        tmp = Path(tmp_dir)
        data, state = tmp / "data", tmp / "state"
        subprocess.run([sys.executable, str(ROOT / "components" / "movielens"), "--out", str(data / "incoming"),
                        "initial"], check=True, capture_output=True)
        uri = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
        with control_plane(tmp / "cluster") as plane, operator(plane, state, tmp / "operator.log") as running:
            lake, features, _ = samples(data, args.epochs)
            for doc in (lake, features):
                plane.run("apply", "-f", "-", stdin=json.dumps(doc))
            wait_for("the FeatureSet to materialize", lambda: (get(plane, "featureset", "user-features").get("status")
                                                               or {}).get("sourceSnapshotId"), 600)
            results = [one(plane, tmp, state, uri, i, args.epochs) for i in range(args.repeat)]
            if running.process.poll() is not None:
                raise RuntimeError(f"the operator exited:\n{running.log_tail()}")

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    ours, direct = median("ours"), median("direct")
    ratio = ours / direct
    print(f"\nTraining throughput: two-tower on MovieLens (first 80% of the ratings), {args.epochs} epochs, "
          f"median of {args.repeat}")
    print(f"| {'measure':<40} | {'TrainingJob':>12} | {'direct':>10} | {'ratio':>6} |")
    print(f"|{'-' * 42}|{'-' * 14}|{'-' * 12}|{'-' * 8}|")
    print(f"| {'steady-state epochs/minute (2..N)':<40} | {ours:>12.2f} | {direct:>10.2f} | {ratio:>6.3f} |")
    print(f"| {'whole run, wall seconds':<40} | {median('ours_wall'):>12.1f} | {median('direct_wall'):>10.1f} | "
          f"{median('direct_wall') / median('ours_wall'):>6.3f} |")
    verdict = "goal met" if ratio >= GOAL else "floor holds" if ratio >= FLOOR else "FLOOR FAILED"
    print(f"throughput ratio {ratio:.3f}: {verdict} (floor >= {FLOOR}, goal >= {GOAL})")
    return 0 if ratio >= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())
